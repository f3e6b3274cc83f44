"""Issue 16 (training cost): float32 against bfloat16 matrix products of a step's shapes on this CPU, 2 threads.

Shapes: 1,024 positions through an MLP projection of the bundled model (576 -> 1536, 1536 -> 576) and 400 held
positions through its vocabulary projection (576 -> 49,152). Usage: python bf16_matmul.py (seconds).
"""
import torch, time
torch.set_num_threads(2)
def bench(dtype, m=1024, k=576, n=1536, reps=30):
    a = torch.randn(m, k, dtype=dtype); b = torch.randn(k, n, dtype=dtype)
    for _ in range(3): a @ b
    t = time.perf_counter()
    for _ in range(reps): a @ b
    dt = (time.perf_counter() - t) / reps
    return 2 * m * k * n / dt / 1e9
for shape in [(1024, 576, 1536), (1024, 1536, 576), (400, 576, 49152)]:
    print(shape, "fp32 %.0f GFLOP/s" % bench(torch.float32, *shape), "bf16 %.0f GFLOP/s" % bench(torch.bfloat16, *shape))
