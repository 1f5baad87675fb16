"""The chunked, checkpointed KP-Net loss against the all-at-once computation."""
import pytest
import torch
from detectron2.utils.events import EventStorage

from inspose.modeling.kpnet import KPNetLayout, relative_coordinate_axes
from inspose.modeling.kpnet_loss import kpnet_loss_sum

from .model_utils import batch_item, tiny_model

LAYOUT = KPNetLayout(in_channels=8, channels=8, num_keypoints=17, depth=3)


def _inputs(num, batch=2, size=(24, 30), seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, 8, *size, generator=g, requires_grad=True)
    params = (torch.randn(num, LAYOUT.num_params, generator=g) * 0.3).requires_grad_()
    image_index = torch.randint(0, batch, (num,), generator=g)
    locations = torch.rand(num, 2, generator=g) * torch.tensor([size[1] * 8.0, size[0] * 8.0])
    rel_x, rel_y = relative_coordinate_axes(locations, torch.full((num,), 64.0), size, 8)
    cells = torch.randint(0, size[0] * size[1], (num, 17), generator=g)
    labelled = torch.rand(num, 17, generator=g) > 0.3
    labelled[0] = False  # an instance without labelled keypoints counts 0
    return features, image_index, params, rel_x, rel_y, cells, labelled


def _loss_and_grads(inputs, chunk):
    features, image_index, params, rel_x, rel_y, cells, labelled = inputs
    total, count = kpnet_loss_sum(features, image_index, params, LAYOUT, rel_x, rel_y, cells, labelled, chunk)
    features.grad = params.grad = None
    total.backward()
    return total.detach(), count, features.grad.clone(), params.grad.clone()


def _close(a, b, rel=1e-5):
    return (a - b).abs().max() <= rel * b.abs().max()


@pytest.mark.parametrize("chunk", [1, 4, 8, 13, 100])
def test_chunks_give_the_same_loss_and_gradients(chunk):
    inputs = _inputs(13)
    reference = _loss_and_grads(inputs, 0)
    chunked = _loss_and_grads(inputs, chunk)
    assert _close(chunked[0], reference[0])
    assert int(chunked[1]) == int(reference[1]) == int(inputs[-1].any(dim=1).sum())
    assert _close(chunked[2], reference[2]) and _close(chunked[3], reference[3])


def test_checkpointed_chunks_keep_only_their_inputs_for_the_backward_pass():
    inputs = _inputs(64)

    def saved_bytes(chunk):
        saved = []

        def pack(tensor):
            saved.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            features, image_index, params, rel_x, rel_y, cells, labelled = inputs
            kpnet_loss_sum(features, image_index, params, LAYOUT, rel_x, rel_y, cells, labelled, chunk)
        return sum(saved)

    maps_bytes = 64 * 17 * 24 * 30 * 4  # one (M, K, H * W) float map
    assert saved_bytes(0) > 2 * maps_bytes  # all-at-once keeps the hidden layers and the maps
    assert saved_bytes(8) < maps_bytes / 4


def test_model_losses_and_gradients_do_not_depend_on_the_chunk():
    batch = [batch_item(128, 160, 3, seed=1), batch_item(128, 160, 2, seed=2)]
    results = []
    for chunk in (0, 3):
        model = tiny_model("MODEL.INSPOSE.KPNET_LOSS_CHUNK", chunk, seed=0)
        model.train()
        torch.manual_seed(5)  # the positive budget's random choice
        with EventStorage():
            losses = model(batch)
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append(({k: v.detach() for k, v in losses.items()}, grads))
    (losses_a, grads_a), (losses_b, grads_b) = results
    assert losses_a.keys() == losses_b.keys()
    for name in losses_a:
        assert _close(losses_b[name], losses_a[name]), name
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert _close(grads_b[name], grads_a[name]), name


# ---------------------------------------------------------------- KPNET_LOSS_NORMALIZER "keypoint"


def _per_pair_reference(inputs):
    """Cross-entropy of every labelled (instance, keypoint) pair from the per-instance conv2d
    KP-Nets, with torch's cross_entropy: (sum, number of pairs)."""
    from torch.nn import functional as F

    from inspose.modeling.kpnet import kpnet_reference

    features, image_index, params, rel_x, rel_y, cells, labelled = inputs
    logits = kpnet_reference(features, image_index, params, LAYOUT, rel_x, rel_y)
    pairs = labelled.reshape(-1)
    flat_logits = logits.reshape(-1, logits.shape[-1])[pairs]
    return F.cross_entropy(flat_logits, cells.reshape(-1)[pairs], reduction="sum"), int(pairs.sum())


def test_keypoint_normaliser_sums_over_labelled_pairs():
    inputs = _inputs(9, seed=3)
    expected_sum, expected_count = _per_pair_reference(inputs)
    features, image_index, params, rel_x, rel_y, cells, labelled = inputs
    total, count = kpnet_loss_sum(
        features, image_index, params, LAYOUT, rel_x, rel_y, cells, labelled, 4, normalizer="keypoint"
    )
    assert int(count) == expected_count == int(labelled.sum())
    assert torch.allclose(total, expected_sum, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 4, 13, 100])
def test_keypoint_normaliser_does_not_depend_on_the_chunk(chunk):
    inputs = _inputs(13, seed=4)

    def run(size):
        features, image_index, params, rel_x, rel_y, cells, labelled = inputs
        total, count = kpnet_loss_sum(
            features, image_index, params, LAYOUT, rel_x, rel_y, cells, labelled, size, normalizer="keypoint"
        )
        features.grad = params.grad = None
        (total / count).backward()
        return total.detach(), count, features.grad.clone(), params.grad.clone()

    reference, chunked = run(0), run(chunk)
    assert int(chunked[1]) == int(reference[1])
    assert _close(chunked[0], reference[0])
    assert _close(chunked[2], reference[2]) and _close(chunked[3], reference[3])


@pytest.mark.parametrize("chunk", [0, 5])
def test_peaks_are_the_argmax_of_every_trained_map(chunk):
    from inspose.modeling.kpnet import kpnet_reference

    inputs = _inputs(11, seed=5)
    features, image_index, params, rel_x, rel_y, cells, labelled = inputs
    total, count, peaks = kpnet_loss_sum(
        features, image_index, params, LAYOUT, rel_x, rel_y, cells, labelled, chunk, with_peaks=True
    )
    plain, _ = kpnet_loss_sum(features, image_index, params, LAYOUT, rel_x, rel_y, cells, labelled, chunk)
    assert torch.equal(total, plain)  # the peaks change nothing in the loss
    expected = kpnet_reference(features, image_index, params, LAYOUT, rel_x, rel_y).argmax(dim=2)
    assert peaks.dtype == torch.long and torch.equal(peaks, expected)
    assert not peaks.requires_grad


def test_model_keypoint_normaliser_is_the_mean_over_labelled_pairs():
    """Model level: with every keypoint labelled, "keypoint" = "instance"; with some unlabelled,
    the loss is the hand-computed mean over pairs."""
    from inspose.modeling.kpnet import kpnet_reference
    from inspose.modeling.level_maps import gather_locations

    batch = [batch_item(128, 160, 2, seed=1), batch_item(128, 160, 1, seed=2)]
    batch[0]["instances"].gt_keypoints.tensor[0, :5, 2] = 0  # one person with 12 of 17 labelled
    model = tiny_model("MODEL.INSPOSE.KPNET_LOSS_NORMALIZER", "keypoint", "MODEL.INSPOSE.KPNET_LOSS_CHUNK", 3)
    model.train()
    with torch.no_grad():
        images = model.preprocess_image(batch)
        outputs = model.predict_maps(images)
        locs = model.codec.locations(outputs.level_sizes, model.device)
        targets = model.codec.encode(locs, [b["instances"] for b in batch], [None, None])
        loss, _ = model.criterion.kpnet_loss(outputs, locs, targets)
        params = gather_locations(outputs.params, targets.kp_image, targets.kp_location)
        rel_x, rel_y = model.codec.relative_coordinates(locs, targets.kp_location, outputs.map_size)
        layout = model.criterion.layout
        logits = kpnet_reference(outputs.kp_features, targets.kp_image, params, layout, rel_x, rel_y)
    pairs = targets.kp_labelled
    assert not pairs.all()
    log_prob = torch.log_softmax(logits.double(), dim=2).gather(2, targets.kp_cells[..., None]).squeeze(2)
    expected = -(log_prob * pairs).sum() / pairs.sum()
    assert torch.allclose(loss.double(), expected, rtol=1e-5)
