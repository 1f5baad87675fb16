"""KP-Net parameter layout and the batched pass against the per-instance reference."""
import pytest
import torch

from inspose.modeling.kpnet import (
    KPNetLayout,
    kpnet_forward,
    kpnet_reference,
    relative_coordinate_axes,
)


@pytest.mark.parametrize("depth, expected", [(1, 187), (2, 241), (3, 313), (4, 385)])
def test_parameter_count_matches_the_paper(depth, expected):
    assert KPNetLayout(in_channels=8, channels=8, num_keypoints=17, depth=depth).num_params == expected


def test_split_covers_every_parameter_once():
    layout = KPNetLayout(8, 8, 17, 3)
    params = torch.arange(2 * layout.num_params, dtype=torch.float32).view(2, -1)
    pieces = [t for w, b in layout.split(params) for t in (w.reshape(2, -1), b)]
    assert torch.equal(torch.cat(pieces, dim=1), params)
    shapes = [(tuple(w.shape[1:]), tuple(b.shape[1:])) for w, b in layout.split(params)]
    assert shapes == [((8, 10), (8,)), ((8, 8), (8,)), ((17, 8), (17,))]


def _random_inputs(layout, batch=2, instances=7, size=(13, 17), stride=8.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, layout.in_channels, *size, generator=g)
    image_index = torch.randint(0, batch, (instances,), generator=g)
    params = torch.randn(instances, layout.num_params, generator=g) * 0.5
    locations = torch.rand(instances, 2, generator=g) * torch.tensor([size[1], size[0]]) * stride
    norms = torch.tensor([64.0, 128.0, 256.0])[torch.randint(0, 3, (instances,), generator=g)]
    rel_x, rel_y = relative_coordinate_axes(locations, norms, size, stride)
    return features, image_index, params, rel_x, rel_y


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("num_keypoints", [17, 14])
def test_batched_equals_reference(depth, num_keypoints):
    layout = KPNetLayout(8, 8, num_keypoints, depth)
    inputs = _random_inputs(layout)
    batched = kpnet_forward(*inputs[:3], layout, *inputs[3:])
    reference = kpnet_reference(*inputs[:3], layout, *inputs[3:])
    assert batched.shape == (7, num_keypoints, 13 * 17)
    error = (batched - reference).abs().max().item()
    assert error <= 1e-5, error


def test_batched_gradients_equal_reference():
    layout = KPNetLayout(8, 8, 17, 3)
    features, image_index, params, rel_x, rel_y = _random_inputs(layout)
    grads = []
    for fn in (kpnet_forward, kpnet_reference):
        f, p = features.clone().requires_grad_(), params.clone().requires_grad_()
        (fn(f, image_index, p, layout, rel_x, rel_y) ** 2).sum().backward()
        grads.append((f.grad, p.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-4, rtol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-4, rtol=1e-5)


def test_relative_coordinates_point_from_the_location():
    locations = torch.tensor([[12.0, 20.0]])
    rel_x, rel_y = relative_coordinate_axes(locations, torch.tensor([64.0]), (4, 3), 8.0)
    # cell centres at 4, 12, 20 (x) and 4, 12, 20, 28 (y)
    assert torch.allclose(rel_x, torch.tensor([[-8.0, 0.0, 8.0]]) / 64)
    assert torch.allclose(rel_y, torch.tensor([[-16.0, -8.0, 0.0, 8.0]]) / 64)


def test_no_instances():
    layout = KPNetLayout(8, 8, 17, 3)
    features, _, _, rel_x, rel_y = _random_inputs(layout)
    empty = torch.zeros(0, dtype=torch.long)
    out = kpnet_forward(features, empty, torch.zeros(0, layout.num_params), layout, rel_x[:0], rel_y[:0])
    assert out.shape == (0, 17, 13 * 17)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("max_elements", [1, 10_000, 1 << 30])
def test_banded_peaks_equal_the_full_maps(depth, max_elements):
    from inspose.modeling.kpnet_decode import kpnet_peaks

    layout = KPNetLayout(8, 8, 17, depth)
    features, _, params, rel_x, rel_y = _random_inputs(layout, batch=1, instances=6, size=(11, 9))
    image_index = torch.zeros(6, dtype=torch.long)
    logits = kpnet_forward(features, image_index, params, layout, rel_x, rel_y)
    cells, peak, log_norm = kpnet_peaks(features, params, layout, rel_x, rel_y, max_elements)
    assert torch.equal(cells, logits.argmax(dim=2))
    assert torch.allclose(peak, logits.amax(dim=2), atol=1e-5)
    assert torch.allclose(log_norm, torch.logsumexp(logits, dim=2), atol=1e-4)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_logits_at_chosen_cells(depth):
    from inspose.modeling.kpnet_decode import kpnet_logits_at

    layout = KPNetLayout(8, 8, 14, depth)
    features, _, params, rel_x, rel_y = _random_inputs(layout, batch=1, instances=5, size=(7, 10))
    logits = kpnet_forward(features, torch.zeros(5, dtype=torch.long), params, layout, rel_x, rel_y)
    g = torch.Generator().manual_seed(3)
    rows = torch.randint(0, 7, (5, 14, 4), generator=g)
    cols = torch.randint(0, 10, (5, 14, 4), generator=g)
    picked = kpnet_logits_at(features, params, layout, rel_x, rel_y, rows, cols)
    expected = logits.gather(2, (rows * 10 + cols).view(5, 14, 4))
    assert torch.allclose(picked, expected, atol=1e-5)
