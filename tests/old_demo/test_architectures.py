"""The architecture registry: every builder's model reads its modality and outputs one logit per class."""

import numpy as np
import pytest

from modeling.errors import UserError
from old_demo import architectures, datasets


@pytest.mark.parametrize("architecture", ["bilstm", "bigru", "attention", "transformer"])
def test_text_architectures_read_raw_strings(architecture):
  data = datasets.TaskData("toy", "text", "multiclass", ["a", "b", "c"], (None, None), (None, None), (None, None),
                           vocabulary=["", "[UNK]", "good", "bad"], sequence_length=6)
  model = architectures.build_model(architecture, architectures.ARCHITECTURES[architecture], data, {"embedding_dim": 8})
  logits = model(np.array(["good bad film", "bad", ""], dtype=object))
  assert logits.shape == (3, 3) and np.all(np.isfinite(logits.numpy()))


def test_registry_errors_name_the_choices():
  with pytest.raises(UserError, match="--task: unknown dataset 'cifar'; choose one of bbc_news, digits"):
    datasets.get_dataset("cifar")
  data = datasets.load_digits()
  with pytest.raises(UserError, match=r"unknown config key\(s\) \['width'\] for architecture 'mlp'"):
    architectures.build_model("mlp", architectures.build_mlp, data, {"width": 3})
  with pytest.raises(UserError, match="architecture 'bilstm' is for text data, but task 'digits' is image"):
    architectures.build_bilstm(data)


def test_utils_still_offers_the_registries_the_seed_readme_links():
  from old_demo import utils

  assert utils.ARCHITECTURES is architectures.ARCHITECTURES and utils.DATASETS is datasets.DATASETS
  assert set(utils.__all__) <= set(dir(utils))


def test_cnn_random_shift_moves_training_images_only():
  data = datasets.TaskData("toy", "image", "multiclass", [str(i) for i in range(10)],
                           (np.zeros((1, 28, 28, 1), np.float32), None), (None, None), (None, None))
  model = architectures.build_cnn(data, random_shift=0.2, dropout=0.0)
  shifting = [layer for layer in model.layers if layer.__class__.__name__ == "RandomTranslation"]
  assert len(shifting) == 1 and shifting[0].height_factor == 0.2
  images = np.random.default_rng(0).random((8, 28, 28, 1)).astype(np.float32)
  np.testing.assert_array_equal(shifting[0](images, training=False).numpy(), images)
  moved = shifting[0](images, training=True).numpy()
  assert moved.shape == images.shape and not np.allclose(moved, images)
  np.testing.assert_array_equal(model(images, training=False).numpy(), model(images, training=False).numpy())
  plain = architectures.build_cnn(data)
  assert not any(layer.__class__.__name__ == "RandomTranslation" for layer in plain.layers)
