"""The training dataset: records mapped to model inputs, skipping records the mapper rejects.

The mapper returns None for an unreadable training image (``image_io.SkippedImages`` logs it);
this dataset then maps another, randomly drawn record instead. detectron2 v0.6's ``MapDataset``
does the same but draws with ``random.sample`` from a set, which Python 3.11 refuses
(``TypeError: Population must be a sequence``), so the first truncated JPEG would end the run.
"""
from detectron2.data.common import MapDataset

__all__ = ["SkippingMapDataset"]


class SkippingMapDataset(MapDataset):
    """``MapDataset`` whose fallback draws indices with ``randrange`` (any Python version)."""

    MAX_ATTEMPTS = 1000

    def __getitem__(self, idx):
        current = int(idx)
        for _ in range(self.MAX_ATTEMPTS):
            data = self._map_func(self._dataset[current])
            if data is not None:
                return data
            self._fallback_candidates.discard(current)
            if not self._fallback_candidates:
                break
            current = self._rng.randrange(len(self._dataset))
            while current not in self._fallback_candidates:
                current = self._rng.randrange(len(self._dataset))
        raise RuntimeError(
            f"no readable training image found after trying {self.MAX_ATTEMPTS} records: "
            "check the dataset (see the 'Skipping an unreadable training image' warnings)"
        )
