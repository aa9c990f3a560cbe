"""The CUDA sampling kernel against the torch reference step — on a GPU (``ehrfast._cuda``) and,
everywhere, as the same kernel source compiled for the CPU (``ehrfast._cuda_host``, CUDA's
execution model emulated: a block's 256 threads as fibers, real barriers and shuffles).

Same logits, same Philox counters: the kernel must draw the same tokens and accumulate the
same path probabilities (≤ 1e-5), for every logits dtype, temperatures, top-p (at 1, with
ties, tiny), vocabularies smaller than, equal to and much larger than the block, and rows that
have already finished or are at different steps. The host build runs under both thread
schedules (ascending and descending), so a missing barrier shows under one or the other.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ehrfast.backends import cuda_host_module, cuda_module
from ehrfast.infer.cuda_sampling import MAX_EVENTS, host_kernel_step, kernel_step
from ehrfast.infer.sampler import SamplingSettings, sample_trajectories
from ehrfast.infer.sampling_step import EventRecord, EventSettings, SamplerState, StepSettings, event_step, reference_step


def sample(model, contexts, target_ids, durations_us, **kw):
    """``sample_trajectories`` with the sampling settings given as keywords, as the tests write them."""
    names = {f.name for f in dataclasses.fields(SamplingSettings)}
    settings = SamplingSettings(**{k: v for k, v in kw.items() if k in names})
    return sample_trajectories(model, contexts, target_ids, durations_us, settings, **{k: v for k, v in kw.items() if k not in names})


@dataclasses.dataclass(frozen=True)
class Engine:
    """Where the kernel runs: its step function, the tensors' device, and how many rows a test
    affords there (the emulation runs a block's threads one at a time)."""

    name: str
    step: object
    device: str
    rows: int


ENGINES = [
    pytest.param(Engine("cuda", kernel_step, "cuda", 300), marks=[pytest.mark.gpu,
                 pytest.mark.skipif(cuda_module() is None, reason="ehrfast._cuda not built")], id="cuda"),
    pytest.param("host-forward", marks=pytest.mark.skipif(cuda_host_module() is None, reason="ehrfast._cuda_host not built"),
                 id="host-forward"),
    pytest.param("host-reverse", marks=pytest.mark.skipif(cuda_host_module() is None, reason="ehrfast._cuda_host not built"),
                 id="host-reverse"),
]


@pytest.fixture(params=ENGINES)
def engine(request):
    if isinstance(request.param, Engine):
        yield request.param
        return
    schedule = request.param.split("-")[1]
    cuda_host_module().set_schedule(schedule)
    try:
        yield Engine(request.param, host_kernel_step, "cpu", 24)
    finally:
        cuda_host_module().set_schedule("forward")


def _settings(vocab, rng, device, top_p, temperature, horizon=50.0, max_new_tokens=1000):
    target = torch.zeros(vocab, dtype=torch.bool)
    target[torch.as_tensor(rng.choice(vocab, size=max(1, vocab // 10), replace=False))] = True
    stop = torch.zeros(vocab, dtype=torch.bool)
    stop[torch.as_tensor(rng.choice(vocab, size=max(1, vocab // 50), replace=False))] = True
    durations = torch.as_tensor(rng.exponential(1.0, vocab) * (rng.random(vocab) < 0.3))
    return StepSettings(target.to(device), stop.to(device), durations.to(device), horizon, max_new_tokens, temperature, top_p, seed=1234)


def _state(n, rng, device):
    state = SamplerState.start(rng.integers(-(2**62), 2**62, n), rng.integers(0, 10, n), device)
    state.alive[torch.as_tensor(rng.random(n) < 0.1, device=device)] = False  # some rows already finished
    state.elapsed_us += torch.as_tensor(rng.random(n) * 10, device=device)
    state.generated += torch.as_tensor(rng.integers(0, 50, n), dtype=torch.int32, device=device)  # rows at different steps
    return state


def _clone(state: SamplerState) -> SamplerState:
    return SamplerState(*(t.clone() for t in vars(state).values()))


def _assert_step_matches_reference(engine: Engine, logits, settings, state) -> None:
    expected_state = _clone(state)
    p_kernel = torch.zeros(len(logits), dtype=torch.float64, device=engine.device)
    engine.step(logits, state, settings, p_target=p_kernel)
    p_reference = reference_step(logits.float(), expected_state, settings)
    torch.testing.assert_close(p_kernel, p_reference, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(state.next_token, expected_state.next_token, rtol=0, atol=0)
    torch.testing.assert_close(state.log_survival, expected_state.log_survival, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(state.elapsed_us, expected_state.elapsed_us, rtol=1e-12, atol=0)
    for name in ("alive", "hit", "generated"):
        torch.testing.assert_close(getattr(state, name), getattr(expected_state, name), rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("vocab", [7, 256, 257, 4096, 9001])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("top_p,temperature", [(1.0, 1.0), (0.9, 1.0), (0.5, 0.7), (0.95, 1.3), (1e-6, 1.0)])
def test_kernel_step_matches_reference(engine, vocab, dtype, top_p, temperature):
    rng = np.random.default_rng(vocab)
    n = engine.rows
    logits = (torch.randn(n, vocab, generator=torch.Generator().manual_seed(vocab)) * 3).to(dtype)
    logits[:, : vocab // 3] = logits[:, :1]  # ties: many tokens share one value (the nucleus boundary keeps them all)
    logits = logits.to(engine.device)
    settings = _settings(vocab, rng, engine.device, top_p, temperature)
    for _ in range(3 if engine.name == "cuda" else 1):
        _assert_step_matches_reference(engine, logits, settings, _state(n, rng, engine.device))


def test_kernel_step_on_a_column_slice_and_all_mass_on_the_target(engine):
    """Rows read through a stride wider than the vocabulary; a row whose whole nucleus is the
    target set ends (no continuation exists)."""
    rng = np.random.default_rng(1)
    n, vocab = engine.rows, 300
    wide = torch.randn(n, vocab + 17, generator=torch.Generator().manual_seed(1)).to(engine.device)
    logits = wide[:, :vocab]
    settings = _settings(vocab, rng, engine.device, top_p=0.5, temperature=1.0)
    target = int(torch.nonzero(settings.target_mask)[0])
    logits[0] = -30.0
    logits[0, target] = 30.0  # all the mass on one target token
    state = _state(n, rng, engine.device)
    state.alive[0] = True
    _assert_step_matches_reference(engine, logits, settings, state)
    assert not bool(state.alive[0])


def test_kernel_never_samples_outside_the_nucleus_or_into_the_target(engine):
    rng = np.random.default_rng(0)
    n, vocab = (2048, 1000) if engine.name == "cuda" else (16, 1000)
    logits = torch.randn(n, vocab, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).float().to(engine.device)
    settings = _settings(vocab, rng, engine.device, top_p=0.6, temperature=1.0)
    probs = torch.softmax(logits.double(), -1)
    for step in range(5 if engine.name == "cuda" else 2):
        state = SamplerState.start(np.arange(n), np.zeros(n, np.int64), engine.device)
        state.generated += step
        engine.step(logits, state, settings)
        p = probs[torch.arange(n, device=engine.device), state.next_token]
        above = (probs * (probs > p[:, None])).sum(-1)
        assert (above < 0.6).all() and not settings.target_mask[state.next_token].any()


def test_kernel_engine_gives_the_reference_engine_paths(engine):
    """Whole trajectories on a Markov chain: kernel and reference steps, same seed → same paths."""
    rng = np.random.default_rng(3)
    vocab = 40
    transition = rng.dirichlet(np.ones(vocab) * 0.5, size=vocab)
    log_p = torch.log(torch.as_tensor(transition, dtype=torch.float32, device=engine.device))

    def model(idx, prs=None):
        return log_p[idx]

    durations = rng.exponential(1.0, vocab) * (rng.random(vocab) < 0.4)
    subjects, n_samples, steps = (20, 16, 64) if engine.name == "cuda" else (3, 4, 24)
    contexts = [rng.integers(0, vocab, 3) for _ in range(subjects)]
    kw = dict(horizon_us=30.0, n_samples=n_samples, max_new_tokens=steps, stop_ids=[0], seed=5, top_p=0.9, device=engine.device,
              subject_keys=np.arange(subjects) + 10**17)
    kernel = sample(model, contexts, np.array([5, 6]), durations, step_backend=engine.step, **kw)
    reference = sample(model, contexts, np.array([5, 6]), durations, step_backend="reference", **kw)
    np.testing.assert_allclose(kernel.sample_path_probability, reference.sample_path_probability, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(kernel.sample_hit, reference.sample_hit)
    np.testing.assert_array_equal(kernel.tokens_generated, reference.tokens_generated)


# ---- competing events (ARES.md S1) -----------------------------------------------------------


def _event_settings(vocab, rng, device, n_events, edges=(2.0, 5.0, 9.0), epsilon=1e-3, stop_at_event=False):
    classes = np.full(vocab, -1, np.int16)
    chosen = rng.choice(vocab, size=max(n_events, vocab // 8), replace=False)
    classes[chosen] = np.arange(len(chosen)) % n_events
    return EventSettings(torch.as_tensor(classes, device=device), n_events, torch.as_tensor(edges, dtype=torch.float64, device=device),
                         epsilon, stop_at_event)


def _clone_record(record: EventRecord) -> EventRecord:
    return EventRecord(*(t.clone() for t in vars(record).values()))


def _assert_event_step_matches_reference(engine, logits, settings, events, state, record):
    want_state, want_record = _clone(state), _clone_record(record)
    p_kernel = torch.zeros(len(logits), dtype=torch.float64, device=engine.device)
    engine.step(logits, state, settings, events, record, p_target=p_kernel)
    p_reference = event_step(logits.float(), want_state, settings, events, want_record)
    torch.testing.assert_close(p_kernel, p_reference, rtol=1e-5, atol=1e-9)
    for name in ("alive", "hit", "generated", "next_token"):
        torch.testing.assert_close(getattr(state, name), getattr(want_state, name), rtol=0, atol=0, msg=name)
    torch.testing.assert_close(state.log_survival, want_state.log_survival, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(state.elapsed_us, want_state.elapsed_us, rtol=1e-12, atol=0)
    for name in ("mc_event", "mc_token", "mc_step", "end_reason"):
        torch.testing.assert_close(getattr(record, name), getattr(want_record, name), rtol=0, atol=0, msg=name)
    for name in ("mc_elapsed_us", "end_elapsed_us"):
        torch.testing.assert_close(getattr(record, name), getattr(want_record, name), rtol=1e-12, atol=0, equal_nan=True, msg=name)
    torch.testing.assert_close(record.cif, want_record.cif, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(record.cif_time, want_record.cif_time, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("vocab, n_events", [(7, 1), (300, 3), (4096, MAX_EVENTS)])
@pytest.mark.parametrize("top_p", [1.0, 0.8])
@pytest.mark.parametrize("stop_at_event", [False, True])
def test_kernel_event_step_matches_reference(engine, vocab, n_events, top_p, stop_at_event):
    """Every event output, over several steps of rows at different steps, some finished, some
    with an event already recorded, a token cap and a time limit that end rows."""
    rng = np.random.default_rng(vocab + n_events)
    n = engine.rows
    logits = (torch.randn(n, vocab, generator=torch.Generator().manual_seed(vocab)) * 2).to(engine.device)
    settings = dataclasses.replace(_settings(vocab, rng, engine.device, top_p, 1.0, horizon=12.0, max_new_tokens=56), target_mask=None)
    events = _event_settings(vocab, rng, engine.device, n_events, stop_at_event=stop_at_event)
    settings = dataclasses.replace(settings, target_mask=events.event_class >= 0)
    state = _state(n, rng, engine.device)
    record = EventRecord.empty(n, n_events, events.n_bins, engine.device)
    for _ in range(4 if engine.name == "cuda" else 2):
        _assert_event_step_matches_reference(engine, logits, settings, events, state, record)
        logits = logits.roll(1, dims=1)


def test_kernel_event_engine_gives_the_reference_engine_paths(engine):
    """Whole competing-event runs on a Markov chain: the same first events and path estimates."""
    rng = np.random.default_rng(4)
    vocab = 40
    transition = rng.dirichlet(np.ones(vocab) * 0.5, size=vocab)
    log_p = torch.log(torch.as_tensor(transition, dtype=torch.float32, device=engine.device))

    def model(idx, prs=None):
        return log_p[idx]

    durations = rng.exponential(1.0, vocab) * (rng.random(vocab) < 0.5)
    classes = np.full(vocab, -1)
    classes[[5, 6, 7, 20]] = [0, 1, 1, 2]
    subjects, n_samples, steps = (20, 16, 96) if engine.name == "cuda" else (3, 4, 32)
    contexts = [rng.integers(0, vocab, 3) for _ in range(subjects)]
    kw = dict(horizon_us=25.0, n_samples=n_samples, max_new_tokens=steps, seed=6, top_p=0.9, device=engine.device,
              subject_keys=np.arange(subjects) + 10**15, time_edges_us=(3.0, 10.0), survival_epsilon=1e-2, event_class=classes)
    kernel = sample(model, contexts, np.array([], np.int64), durations, step_backend=engine.step, **kw).events
    reference = sample(model, contexts, np.array([], np.int64), durations, step_backend="reference", **kw).events
    for name in ("mc_event", "mc_token", "mc_step", "end_reason", "tokens"):
        np.testing.assert_array_equal(getattr(kernel, name), getattr(reference, name), err_msg=name)
    np.testing.assert_allclose(kernel.mc_elapsed_us, reference.mc_elapsed_us, rtol=1e-12)
    for name in ("cif", "cif_time", "residual"):
        np.testing.assert_allclose(getattr(kernel, name), getattr(reference, name), rtol=1e-5, atol=1e-12, err_msg=name)


def test_kernel_rejects_bad_event_tensors(engine):
    rng = np.random.default_rng(0)
    device = engine.device
    settings = _settings(10, rng, device, 1.0, 1.0)
    events = _event_settings(10, rng, device, 2)
    state = SamplerState.start(np.arange(4), np.zeros(4, np.int64), device)
    record = EventRecord.empty(4, 2, events.n_bins, device)
    with pytest.raises(ValueError, match="both"):
        engine.step(torch.zeros(4, 10, device=device), state, settings, events, None)
    with pytest.raises(ValueError, match="events.event_class"):
        engine.step(torch.zeros(4, 10, device=device), state, settings, dataclasses.replace(events, event_class=events.event_class.long()), record)
    with pytest.raises(ValueError, match="record.cif_time"):
        engine.step(torch.zeros(4, 10, device=device), state, settings, events, EventRecord.empty(4, 2, events.n_bins + 1, device))
    with pytest.raises(ValueError, match="event classes"):
        engine.step(torch.zeros(4, 10, device=device), state, settings, dataclasses.replace(events, n_events=MAX_EVENTS + 1), record)


def test_max_events_is_the_kernels():
    assert cuda_host_module() is None or cuda_host_module().MAX_EVENTS == MAX_EVENTS


def test_kernel_rejects_bad_tensors(engine):
    rng = np.random.default_rng(0)
    device = engine.device
    settings = _settings(10, rng, device, 1.0, 1.0)
    state = SamplerState.start(np.arange(4), np.zeros(4, np.int64), device)
    with pytest.raises(ValueError, match="logits"):
        engine.step(torch.zeros(4, 10, dtype=torch.float64, device=device), state, settings)
    with pytest.raises(ValueError, match="state.alive"):
        bad = _clone(state)
        bad.alive = bad.alive.to(torch.int32)
        engine.step(torch.zeros(4, 10, device=device), bad, settings)
    with pytest.raises(ValueError, match="settings.target_mask"):  # the first [vocab] tensor checked
        engine.step(torch.zeros(4, 11, device=device), state, settings)
    with pytest.raises(ValueError, match="settings.durations_us"):
        engine.step(torch.zeros(4, 10, device=device), state, dataclasses.replace(settings, durations_us=settings.durations_us[:9]))


@pytest.mark.gpu
@pytest.mark.skipif(cuda_module() is None, reason="ehrfast._cuda not built")
@pytest.mark.parametrize("modality", ["none", "cross", "prefix"])
def test_cuda_graph_decoding_gives_the_eager_and_cpu_paths(modality):
    """CachedDecoder on CUDA: decode steps replayed from a captured CUDA graph, with slots
    refilled mid-run (stop tokens end subjects at different steps), sample what eager CUDA
    decoding and the CPU engine sample."""
    from ehrfast.infer.decoders import CachedDecoder
    from ehrfast.model import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=64, block_size=96, n_layer=2, n_head=2, n_embd=64, modality=modality,
                    n_prs_traits=0 if modality == "none" else 4, n_soft_tokens=3, dropout=0.0)
    model = GPT(cfg).eval()
    rng = np.random.default_rng(0)
    contexts = [rng.integers(1, 64, n) for n in rng.integers(3, 40, 11)]
    prs = None if modality == "none" else rng.standard_normal((11, 4)).astype(np.float32)
    kw = dict(horizon_us=1e9, n_samples=5, max_new_tokens=24, seed=2, prs=prs, top_p=0.9, stop_ids=list(range(1, 6)))
    cpu = sample(CachedDecoder(model, 24, "cpu", 3), contexts, np.array([7, 8]), np.ones(64), device="cpu", **kw)
    model.cuda()
    runs = {graphs: sample(CachedDecoder(model, 24, "cuda", 3, cuda_graphs=graphs), contexts, np.array([7, 8]), np.ones(64),
                           device="cuda", **kw) for graphs in (False, True)}
    assert len(set(cpu.tokens_generated.tolist())) > 1
    for name, run in (("eager", runs[False]), ("cpu", cpu)):
        np.testing.assert_allclose(runs[True].sample_path_probability, run.sample_path_probability, rtol=1e-5, atol=1e-7, err_msg=name)
        np.testing.assert_array_equal(runs[True].tokens_generated, run.tokens_generated, err_msg=name)


# ---- the emulation itself --------------------------------------------------------------------

host = cuda_host_module()
needs_host = pytest.mark.skipif(host is None, reason="ehrfast._cuda_host not built")


@needs_host
@pytest.mark.parametrize("schedule", ["forward", "reverse"])
def test_emulated_reductions_and_shuffles_compute_what_numpy_does(schedule):
    host.set_schedule(schedule)
    try:
        x = np.random.default_rng(0).random(3 * 256)
        total, _ = host.emulator_selftest("block_sum", 3, 256, x)
        np.testing.assert_allclose(total[:3], x.reshape(3, 256).sum(1), rtol=1e-12)
        scan, top = host.emulator_selftest("warp_scan_and_max", 1, 64, x[:64])
        warps = x[:64].reshape(2, 32)
        np.testing.assert_allclose(scan, np.cumsum(warps, axis=1).ravel(), rtol=1e-12)
        np.testing.assert_array_equal(top, np.repeat(warps.max(1), 32))
    finally:
        host.set_schedule("forward")


@needs_host
@pytest.mark.parametrize("kernel, message", [
    ("divergent_barrier", "not reached by every thread"),
    ("two_barriers", "__syncthreads\\(\\) divergence"),
    ("shuffle_outside_mask", "outside the mask"),
    ("excluded_lane", "outside the mask|excludes it"),
])
def test_emulation_reports_synchronization_mistakes_instead_of_hanging(kernel, message):
    with pytest.raises(RuntimeError, match=message):
        host.emulator_selftest(kernel, 1, 128, np.zeros(128))
