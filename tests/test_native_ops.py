"""The native backend's op registry, its prepare-once program and the planner's lifetimes of every input.

No C compiler and no TensorFlow here: the models are ``tests/golden/tiny.tflite`` (RESHAPE, AVERAGE_POOL_2D,
FULLY_CONNECTED, SOFTMAX) and graphs edited in memory; the planner tests build step lists directly.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgedigit.codegen import native
from edgedigit.codegen.native import ops, planner
from edgedigit.core.errors import UnsupportedOpError
from edgedigit.core.graph import Graph, load_graph
from edgedigit.core.paths import templates_dir

TINY = Path(__file__).parent / "golden" / "tiny.tflite"
EXPECTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
                "SOFTMAX")


@pytest.fixture
def tiny() -> Graph:
    return load_graph(TINY)


def _with_opcode(graph: Graph, old: str, new: str) -> Graph:
    """``graph`` with every ``old`` op renamed ``new`` (same tensors)."""
    return dataclasses.replace(graph, ops=[dataclasses.replace(op, opcode=new) if op.opcode == old else op
                                           for op in graph.ops])


# ---- the registry ----------------------------------------------------------------------------------------------

def test_supported_ops_are_the_registered_ops_in_registration_order():
    assert native.SUPPORTED_OPS == ops.supported_ops() == tuple(ops._REGISTRY) == EXPECTED_OPS


def _prototypes() -> dict[str, tuple[str, str]]:
    """kernel -> (return type, parameter struct), from ``edgedigit_kernels.h``."""
    header = (templates_dir() / "native" / "edgedigit_kernels.h").read_text()
    found = re.findall(r"^(void|int) (edgedigit_\w+)\(const (edgedigit_\w+_t) \*p, const int8_t \*input, "
                       r"int8_t \*output\);$", header, re.MULTILINE)
    return {func: (ret, struct) for ret, func, struct in found}


def _assert_steps_match_the_header(steps) -> None:
    protos = _prototypes()
    for s in steps:
        if s.alias:
            assert s.kernel == s.struct == "" and not s.can_fail and s.op.opcode == "RESHAPE"
            continue
        assert s.kernel in protos, f"{s.op.opcode}: {s.kernel} is not declared in edgedigit_kernels.h"
        ret, struct = protos[s.kernel]
        assert (struct, ret == "int") == (s.struct, s.can_fail), s.op.opcode
        assert s.inputs == [s.op.inputs[0]] and s.outputs == [s.op.outputs[0]]


def test_each_step_names_a_declared_kernel_its_struct_and_whether_it_can_fail(tiny):
    steps = native.prepare(tiny).steps
    _assert_steps_match_the_header(steps)
    assert [s.can_fail for s in steps] == [op.opcode == "AVERAGE_POOL_2D" for op in tiny.ops]
    for opcode in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):  # one lowering, the kernel picked by opcode
        _assert_steps_match_the_header(native.prepare(_with_opcode(tiny, "AVERAGE_POOL_2D", opcode)).steps)


def test_every_supported_op_of_the_factory_models_matches_the_header(tflite_models):
    seen = set()
    for path in tflite_models.values():
        steps = native.prepare(load_graph(path)).steps
        _assert_steps_match_the_header(steps)
        seen |= {s.op.opcode for s in steps}
    assert seen == set(native.SUPPORTED_OPS)


def test_an_op_without_a_lowering_is_refused_with_its_name(tiny):
    g = _with_opcode(tiny, "SOFTMAX", "TANH")
    want = (f"{TINY}: operator TANH is not supported by the native backend (supported: "
            f"{', '.join(EXPECTED_OPS)})")
    for stage in (native.check_graph, native.prepare, native.plan,
                  lambda g: native.generate(g, variant="t", source_name="t.tflite")):
        with pytest.raises(UnsupportedOpError) as e:
            stage(g)
        assert str(e.value) == want
    with pytest.raises(UnsupportedOpError, match="operator TANH is not supported"):
        ops.lower(g, g.ops[-1], len(g.ops) - 1)  # the registry refuses it too, without check_graph


def test_a_new_lowering_is_supported_once_registered(tiny, monkeypatch):
    monkeypatch.setattr(ops, "_REGISTRY", dict(ops._REGISTRY))

    @ops.lowers("TANH")
    def tanh(ctx: ops.OpContext) -> ops.Step:
        t_in, t_out = ctx.activations()
        return ops.Step(ctx.op, "edgedigit_tanh", "edgedigit_tanh_t", {"size": t_in.size},
                        inputs=[t_in.index], outputs=[t_out.index])

    assert ops.supported_ops() == (*EXPECTED_OPS, "TANH")
    program = native.prepare(_with_opcode(tiny, "SOFTMAX", "TANH"))
    assert program.steps[-1].kernel == "edgedigit_tanh"
    with pytest.raises(ValueError, match="TANH is registered twice"):
        ops.lowers("TANH")(tanh)


def test_lowering_errors_name_the_file_and_the_op(tiny):
    fc = next(op for op in tiny.ops if op.opcode == "FULLY_CONNECTED")
    g = dataclasses.replace(tiny, ops=[dataclasses.replace(op, options={**op.options, "fused_activation_function": 5})
                                       if op is fc else op for op in tiny.ops])
    with pytest.raises(UnsupportedOpError, match=re.escape(f"{TINY} (op {fc.index} FULLY_CONNECTED): fused "
                                                           "activation code 5 is not supported")):
        native.prepare(g)


# ---- prepared once ---------------------------------------------------------------------------------------------

def test_prepare_once_feeds_the_budget_and_the_generator(tiny, monkeypatch):
    program = native.prepare(tiny)
    assert [s.op for s in program.steps] == tiny.ops
    assert program.plan == native.plan(tiny) and program.arena_bytes == program.plan.arena_bytes
    assert program.weights_bytes == sum(t.nbytes for t in tiny.tensors if t.data is not None)
    fresh = native.generate(tiny, variant="tiny", source_name="tiny.tflite")

    def no_second_prepare(*args, **kwargs):
        raise AssertionError("prepared twice")

    monkeypatch.setattr(native, "check_graph", no_second_prepare)
    monkeypatch.setattr(ops, "_REGISTRY", {})
    assert native.generate(tiny, variant="tiny", source_name="tiny.tflite", program=program) == fresh
    assert native.generate_graph(tiny, variant="tiny", source_name="tiny.tflite", program=program) == {
        k: v for k, v in fresh.items() if k != "edgedigit_native_runner.c"}


def test_a_program_of_another_graph_is_refused(tiny):
    other = load_graph(TINY)
    with pytest.raises(ValueError, match="prepared from"):
        native.generate(tiny, variant="t", source_name="t.tflite", program=native.prepare(other))


def test_generate_follows_the_io_contract_of_core_int8(tiny):
    """A 784-input digit classifier (2..16 outputs) takes raw pixels through the table; the same graph with one
    output is any other model: its runner takes the int8 input tensor's bytes as they are."""
    runner = native.generate(tiny, variant="t", source_name="t.tflite")["edgedigit_native_runner.c"]
    assert "EDGEDIGIT_INPUT_PIXELS" in runner and "g_input_lut[g_input[i]]" in runner and "10u," in runner
    out = tiny.output
    one = dataclasses.replace(tiny, tensors=[dataclasses.replace(t, shape=(1, 1)) if t is out else t
                                             for t in tiny.tensors])
    program = dataclasses.replace(native.prepare(tiny), graph=one)
    runner = native.generate(one, variant="t", source_name="t.tflite", program=program)["edgedigit_native_runner.c"]
    assert "EDGEDIGIT_INPUT_INT8" in runner and "g_input_lut" not in runner
    assert "static uint8_t g_input[784];" in runner and "input[i] = (int8_t)g_input[i];" in runner


# ---- the planner: lifetimes of every activation input ---------------------------------------------------------

def _tensors(*sizes: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(name=f"t{i}", nbytes=s) for i, s in enumerate(sizes)]


def _step(inputs: list[int], outputs: list[int], alias: bool = False) -> SimpleNamespace:
    return SimpleNamespace(inputs=inputs, outputs=outputs, alias=alias)


def _live(steps, graph_inputs, graph_outputs) -> dict[int, tuple[int, int]]:
    """Independent liveness: tensor -> (first step, last step), aliases not merged."""
    span: dict[int, tuple[int, int]] = {}

    def at(t: int, i: int) -> None:
        a, b = span.get(t, (i, i))
        span[t] = (min(a, i), max(b, i))

    for t in graph_inputs:
        at(t, 0)
    for i, s in enumerate(steps):
        for t in [*s.inputs, *s.outputs]:
            at(t, i)
    for t in graph_outputs:
        at(t, len(steps))
    return span


def _assert_no_live_overlap(mp: planner.MemoryPlan, steps, tensors, graph_inputs, graph_outputs) -> None:
    span = _live(steps, graph_inputs, graph_outputs)
    aliases = {(s.inputs[0], s.outputs[0]) for s in steps if s.alias}
    for a in span:
        for b in span:
            if a >= b or (a, b) in aliases or (b, a) in aliases:
                continue
            if span[a][0] <= span[b][1] and span[b][0] <= span[a][1]:
                oa, ob = mp.offsets[a], mp.offsets[b]
                assert oa + tensors[a].nbytes <= ob or ob + tensors[b].nbytes <= oa, (a, b, mp.offsets)


def test_a_tensor_read_by_two_later_ops_lives_until_the_last():
    # t0 -> [0] -> t1; t1 -> [1] -> t2; t2 -> [2] -> t3; t1 -> [3] -> t4 (t1 is read again after t2 and t3)
    tensors = _tensors(4, 40, 8, 8, 8)
    steps = [_step([0], [1]), _step([1], [2]), _step([2], [3]), _step([1], [4])]
    mp = planner.plan_steps(steps, tensors, [0], [4])
    t1 = next(b for b in mp.buffers if b.name == "t1")
    assert (t1.first, t1.last) == (0, 3)
    _assert_no_live_overlap(mp, steps, tensors, [0], [4])
    assert mp.lower_bound == 40 + 8 + 8  # t1, t2 and t3 at step 2


def test_an_op_with_two_activation_inputs_keeps_both_alive():
    # t0 -> [0] -> t1; t1 -> [1] -> t2; ADD(t1, t2) -> [2] -> t3: the second input must not be overwritten
    tensors = _tensors(8, 8, 8, 8)
    steps = [_step([0], [1]), _step([1], [2]), _step([1, 2], [3])]
    mp = planner.plan_steps(steps, tensors, [0], [3], alignment=1)
    spans = {b.name: (b.first, b.last) for b in mp.buffers}
    assert spans == {"t0": (0, 0), "t1": (0, 2), "t2": (1, 2), "t3": (2, 3)}
    assert len({mp.offsets[1], mp.offsets[2], mp.offsets[3]}) == 3
    assert mp.arena_bytes == mp.lower_bound == 24
    _assert_no_live_overlap(mp, steps, tensors, [0], [3])


def test_an_alias_shares_its_input_buffer_and_extends_its_life():
    # t0 -> [0] -> t1; RESHAPE t1 -> t2; t2 and t1 read together by [2] -> t3
    tensors = _tensors(8, 12, 12, 4)
    steps = [_step([0], [1]), _step([1], [2], alias=True), _step([2, 1], [3])]
    mp = planner.plan_steps(steps, tensors, [0], [3])
    assert mp.offsets[1] == mp.offsets[2]
    assert [(b.name, b.first, b.last) for b in mp.buffers] == [("t0", 0, 0), ("t1", 0, 2), ("t3", 2, 3)]


def test_plan_steps_reads_lowered_steps_like_plan(tiny):
    program = native.prepare(tiny)
    again = planner.plan_steps(program.steps, tiny.tensors, tiny.inputs, tiny.outputs)
    assert again == program.plan


@st.composite
def _programs(draw):
    """Random DAG programs: each step reads 1..3 earlier tensors (some read several times) and writes one."""
    n = draw(st.integers(1, 8))
    sizes = draw(st.lists(st.integers(1, 64), min_size=n + 1, max_size=n + 1))
    steps = []
    for i in range(n):
        reads = draw(st.lists(st.integers(0, i), min_size=1, max_size=3, unique=True))
        steps.append(_step(reads, [i + 1]))
    return steps, _tensors(*sizes), n


@settings(max_examples=200, deadline=None)
@given(_programs(), st.sampled_from([1, 4]))
def test_multi_input_programs_never_overlap_live_tensors(program, alignment):
    steps, tensors, n = program
    mp = planner.plan_steps(steps, tensors, [0], [n], alignment)
    _assert_no_live_overlap(mp, steps, tensors, [0], [n])
    assert all(o % alignment == 0 for o in mp.offsets.values())
    assert mp.lower_bound <= mp.arena_bytes
