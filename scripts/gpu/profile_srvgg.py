"""Reference timing of the general-x4v3 (SRVGGNetCompact) forward in PyTorch on the GPU machine, to
tell how far `face2scene upscale`'s network stage is from what the same graph costs in PyTorch.
Random weights (timing only): 1x3x532x532 (a 512² photo with the 10-px pre-pad), fp16, NCHW and
channels-last, cuDNN autotuning off and on; prints ms per forward and the top kernels."""
import time
import torch
import torch.nn as nn
import torch.nn.functional as F


class SRVGG(nn.Module):
    def __init__(self, feat=64, conv=32, scale=4):
        super().__init__()
        layers = [nn.Conv2d(3, feat, 3, 1, 1), nn.PReLU(feat)]
        for _ in range(conv):
            layers += [nn.Conv2d(feat, feat, 3, 1, 1), nn.PReLU(feat)]
        layers += [nn.Conv2d(feat, 3 * scale * scale, 3, 1, 1)]
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x):
        out = F.pixel_shuffle(self.body(x), self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def bench(net, x, n=20):
    with torch.no_grad():
        for _ in range(3):
            net(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            net(x)
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - t) / n


print(torch.__version__, torch.backends.cudnn.version(), torch.cuda.get_device_name())
for autotune in (False, True):
    torch.backends.cudnn.benchmark = autotune
    for cl in (False, True):
        net = SRVGG().cuda().half().eval()
        x = torch.rand(1, 3, 532, 532, device="cuda", dtype=torch.half)
        if cl:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        print(f"autotune={autotune} channels_last={cl}: {bench(net, x):.2f} ms per forward")
torch.backends.cudnn.benchmark = False
net = SRVGG().cuda().half().eval().to(memory_format=torch.channels_last)
x = torch.rand(1, 3, 532, 532, device="cuda", dtype=torch.half).contiguous(memory_format=torch.channels_last)
with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        net(x)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))
