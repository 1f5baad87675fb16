"""``register_keypoint_dataset``: the ``KeypointSpec`` form and the older seven-argument form
(positional and keyword) register the same dataset."""
import uuid

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from inspose.data import COCO_PERSON, KeypointSpec, register_keypoint_dataset

SPEC = COCO_PERSON
PARTS = (list(SPEC.names), [list(p) for p in SPEC.flip_pairs], [list(p) for p in SPEC.skeleton],
         list(SPEC.oks_sigmas))  # fmt: skip


def _fresh_name():
    return f"test_register_{uuid.uuid4().hex[:8]}"


def _metadata_of(name):
    keys = ("keypoint_names", "keypoint_flip_map", "keypoint_connection_rules", "keypoint_oks_sigmas")
    metadata = MetadataCatalog.get(name)
    return {key: getattr(metadata, key) for key in keys}


def _register_every_form(json_file, image_root):
    """{form: dataset name} of one dataset registered in each calling form."""
    names = {form: _fresh_name() for form in ("spec", "positional", "keyword")}
    register_keypoint_dataset(names["spec"], json_file, image_root, SPEC)
    register_keypoint_dataset(names["positional"], json_file, image_root, *PARTS)
    keypoint_names, flip_pairs, skeleton, oks_sigmas = PARTS
    register_keypoint_dataset(
        names["keyword"], json_file, image_root, keypoint_names=keypoint_names, flip_pairs=flip_pairs,
        skeleton=skeleton, oks_sigmas=oks_sigmas,
    )  # fmt: skip
    return names


def test_every_form_gives_the_same_metadata_and_records(coco_kp_mini):
    json_file = str(coco_kp_mini / "annotations" / "person_keypoints_train2017.json")
    names = _register_every_form(json_file, str(coco_kp_mini / "train2017"))
    expected = SPEC.to_metadata()
    for name in names.values():
        assert _metadata_of(name) == expected
        assert MetadataCatalog.get(name).source_json_file == json_file
    records = [DatasetCatalog.get(name) for name in names.values()]
    assert len(records[0]) > 0
    assert all([r["image_id"] for r in other] == [r["image_id"] for r in records[0]] for other in records)


def test_spec_from_parts_stores_tuples():
    assert KeypointSpec.from_parts(*PARTS) == SPEC


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((SPEC, PARTS[1]), {}, "not both"),
        ((SPEC,), {"keypoint_names": PARTS[0]}, "not both"),
        ((PARTS[0],), {"keypoint_names": PARTS[0]}, "given twice"),
        ((PARTS[0], PARTS[1]), {}, "needs a KeypointSpec"),
        ((), {}, "needs a KeypointSpec"),
    ],
)
def test_mixed_or_incomplete_forms_are_rejected(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        register_keypoint_dataset(_fresh_name(), "/nonexistent.json", "/nonexistent", *args, **kwargs)
