"""The same code on CUDA: checks that need a GPU, skipped where there is none."""
import pytest
import torch
from detectron2.utils.events import EventStorage

from inspose.modeling.kpnet import KPNetLayout, kpnet_forward, kpnet_reference, relative_coordinate_axes
from inspose.modeling.kpnet_decode import kpnet_peaks

from .model_utils import batch_item, tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_batched_kpnets_on_cuda_equal_the_reference():
    layout = KPNetLayout(8, 8, 17, 3)
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 8, 25, 38, generator=g)
    image_index = torch.randint(0, 2, (50,), generator=g)
    params = torch.randn(50, layout.num_params, generator=g) * 0.5
    locations = torch.rand(50, 2, generator=g) * 200
    rel_x, rel_y = relative_coordinate_axes(locations, torch.full((50,), 64.0), (25, 38), 8.0)
    args = [t.cuda() for t in (features, image_index, params)]
    batched = kpnet_forward(*args, layout, rel_x.cuda(), rel_y.cuda())
    reference = kpnet_reference(features, image_index, params, layout, rel_x, rel_y)
    assert (batched.cpu() - reference).abs().max() <= 1e-4
    cells, _, _ = kpnet_peaks(args[0][:1], args[2], layout, rel_x.cuda(), rel_y.cuda(), 1 << 16)
    full = kpnet_forward(args[0][:1], torch.zeros_like(args[1]), args[2], layout, rel_x.cuda(), rel_y.cuda())
    assert torch.equal(cells, full.argmax(dim=2))


def test_model_trains_and_predicts_on_cuda():
    model = tiny_model("MODEL.DEVICE", "cuda")
    batch = [batch_item(128, 160, 2), batch_item(128, 160, 0, seed=1)]
    with EventStorage():
        losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    model.predictor.score_thresh = 0.0
    with torch.no_grad():
        cuda_out = model([batch_item(128, 160, 0)])[0]["instances"]
        cpu_out = model.to("cpu")([batch_item(128, 160, 0)])[0]["instances"]
    assert cuda_out.pred_keypoints.is_cuda and len(cuda_out) == len(cpu_out)
    assert torch.allclose(cuda_out.scores.cpu(), cpu_out.scores, atol=1e-3)
