"""The native backend's op registry, its prepare-once program and the planner's lifetimes of every input.

No C compiler here: the models are ``tests/golden/tiny.tflite`` (RESHAPE, AVERAGE_POOL_2D, FULLY_CONNECTED,
SOFTMAX), graphs edited in memory and the factory's models (tests/tflite_factory.py); the planner tests
build step lists directly. The arithmetic of the Prepare helpers is checked against hand-computed values.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgedigit.codegen import native
from edgedigit.codegen.native import ops, planner
from edgedigit.core.errors import ModelError, UnsupportedOpError
from edgedigit.core.graph import Graph, load_graph
from edgedigit.core.paths import templates_dir
from tflite_factory import op_models

# the module (the package's prepare() function shadows its name)
prepare_module = importlib.import_module("edgedigit.codegen.native.prepare")
TINY = Path(__file__).parent / "golden" / "tiny.tflite"
EXPECTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
                "SOFTMAX", "ADD", "MUL", "PAD", "CONCATENATION", "MEAN", "QUANTIZE")
LIBRARIES = {"ADD": "elementwise", "MUL": "elementwise", "PAD": "layout", "CONCATENATION": "layout", "MEAN": "reduce",
             "QUANTIZE": "quantize"}


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


def _header(library: str) -> str:
    name = f"edgedigit_kernels_{library}.h" if library else "edgedigit_kernels.h"
    return (templates_dir() / "native" / name).read_text()


def _prototypes(library: str = "") -> dict[str, tuple[str, str, list[str]]]:
    """kernel -> (return type, parameter struct, the other parameters), from the family's header."""
    found = re.findall(r"^(void|int) (edgedigit_\w+)\(const (edgedigit_\w+_t) \*p, ([^)]*)\);$", _header(library),
                       re.MULTILINE)
    return {func: (ret, struct, [a.strip() for a in args.split(",")]) for ret, func, struct, args in found}


def _assert_steps_match_the_header(steps, graph: Graph) -> None:
    for s in steps:
        if s.alias:
            assert s.kernel == s.struct == "" and not s.can_fail and s.op.opcode == "RESHAPE"
            continue
        assert s.library == LIBRARIES.get(s.op.opcode, ""), s.op.opcode
        protos = _prototypes(s.library)
        assert s.kernel in protos, f"{s.op.opcode}: {s.kernel} is not declared in the header of {s.library!r}"
        ret, struct, args = protos[s.kernel]
        assert (struct, ret == "int") == (s.struct, s.can_fail), s.op.opcode
        assert re.search(rf"^}} {struct};$", _header(s.library), re.MULTILINE), f"{struct} not defined with {s.kernel}"
        # one argument per operand: an input pointer, or one array of input pointers; the output last
        operands = s.operands or (*s.inputs, *s.outputs)
        assert len(args) == len(operands), s.op.opcode
        for arg, operand in zip(args[:-1], operands[:-1], strict=True):
            want = r"const int8_t \*const \*inputs" if isinstance(operand, tuple) else r"const int8_t \*input\d?"
            assert re.fullmatch(want, arg), (s.op.opcode, arg)
        assert args[-1] == "int8_t *output" and operands[-1] == s.outputs[0] and s.outputs == [s.op.outputs[0]]
        # the planner sees every activation input of the op, in the op's order
        assert s.inputs == [t for t in s.op.inputs if t >= 0 and graph.tensors[t].data is None], s.op.opcode


def test_each_step_names_a_declared_kernel_its_struct_and_whether_it_can_fail(tiny):
    steps = native.prepare(tiny).steps
    _assert_steps_match_the_header(steps, tiny)
    assert [s.can_fail for s in steps] == [op.opcode == "AVERAGE_POOL_2D" for op in tiny.ops]
    for opcode in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):  # one lowering, the kernel picked by opcode
        g = _with_opcode(tiny, "AVERAGE_POOL_2D", opcode)
        _assert_steps_match_the_header(native.prepare(g).steps, g)


def test_every_supported_op_of_the_factory_models_matches_the_header(tflite_models):
    seen = set()
    for path in [*tflite_models.values(), *op_models().values()]:
        g = load_graph(path)
        steps = native.prepare(g).steps
        _assert_steps_match_the_header(steps, g)
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


def test_an_int8_graph_with_float_edges_is_refused_naming_the_op(tiny):
    """DEQUANTIZE (int8 -> float32 output) and QUANTIZE from float32 break the int8-in, int8-out contract."""
    sm = next(op for op in tiny.ops if op.opcode == "SOFTMAX")
    out = tiny.tensors[sm.outputs[0]]
    g = dataclasses.replace(_with_opcode(tiny, "SOFTMAX", "DEQUANTIZE"), tensors=[
        dataclasses.replace(t, dtype="float32") if t is out else t for t in tiny.tensors])
    with pytest.raises(UnsupportedOpError, match=re.escape(f"{TINY} (op {sm.index} DEQUANTIZE): int8 -> float32 is "
                                                           "not supported by the native backend: its contract")):
        native.prepare(g)
    first = tiny.ops[0]
    inp = tiny.tensors[first.inputs[0]]
    g = dataclasses.replace(tiny, ops=[dataclasses.replace(first, opcode="QUANTIZE"), *tiny.ops[1:]], tensors=[
        dataclasses.replace(t, dtype="float32") if t is inp else t for t in tiny.tensors])
    with pytest.raises(UnsupportedOpError, match=r"\(op 0 QUANTIZE\): float32 -> int8 is not supported.*"
                                                 r"inference_input_type=tf.int8"):
        native.check_graph(g)
    with pytest.raises(ModelError, match="input float32, output int8: the firmware needs an integer-quantized "
                                         "model"):  # without such an op: the general refusal (core.int8.io_spec)
        native.check_graph(dataclasses.replace(tiny, tensors=[dataclasses.replace(t, dtype="float32") if t is inp
                                                              else t for t in tiny.tensors]))


def test_a_project_gets_the_kernel_files_of_its_ops_only(tiny):
    program = native.prepare(tiny)
    assert program.libraries == () and program.kernel_files == native.KERNEL_FILES
    files = native.generate_graph(tiny, variant="t", source_name="t.tflite", program=program)
    assert set(files) == {*native.KERNEL_FILES, "edgedigit_native_model.h", "edgedigit_native_model.c",
                          native.ROM_HEADER}
    assert files[native.ROM_HEADER] == (templates_dir() / "runtime" / native.ROM_HEADER).read_text()
    assert files["edgedigit_native_model.c"].count("#include \"edgedigit_kernels") == 1
    models = op_models()
    for name, libs in (("add_broadcast", ("elementwise", "reduce")), ("concat", ("layout",)), ("pad", ("layout",)),
                       ("requantize", ("layout", "quantize")), ("mean", ("reduce",))):
        g = load_graph(models[name])
        program = native.prepare(g)
        assert program.libraries == libs, name
        files = native.generate_graph(g, variant=name, source_name=f"{name}.tflite", program=program)
        extra = [f"edgedigit_kernels_{lib}.{ext}" for lib in libs for ext in ("h", "c")]
        assert tuple(files)[:2 + len(extra)] == (*native.KERNEL_FILES, *extra)
        for lib in libs:
            assert files[f"edgedigit_kernels_{lib}.c"] == (templates_dir() / "native" / f"edgedigit_kernels_{lib}.c"
                                                           ).read_text()
            assert f'#include "edgedigit_kernels_{lib}.h"\n' in files["edgedigit_native_model.c"]


def test_multi_input_calls_pass_one_pointer_per_input(tiny):
    models = op_models()
    g = load_graph(models["add_const"])
    program = native.prepare(g)
    code = native.generate_graph(g, variant="c", source_name="c.tflite", program=program)["edgedigit_native_model.c"]
    mp = program.plan
    for n, s in enumerate(program.steps):
        if s.op.opcode in ("ADD", "MUL"):
            const = [t for t in s.op.inputs if g.tensors[t].data is not None]
            assert len(const) == 1 and len(s.inputs) == 1  # the constant becomes an array, the planner skips it
            k = s.op.inputs.index(const[0]) + 1
            args = [f"g_op{n}_input{k}" if t == const[0] else f"g_arena.bytes + {mp.offsets[t]}" for t in s.op.inputs]
            out = f"g_arena.bytes + {mp.offsets[s.outputs[0]]}"
            assert f"{s.kernel}(EDGEDIGIT_ROM_STRUCT({s.struct}, kOp{n}, params), {', '.join(args)}, {out});" in code
            assert f"static const int8_t g_op{n}_input{k}[{g.tensors[const[0]].size}] = {{" in code
    g = load_graph(models["concat"])
    program = native.prepare(g)
    code = native.generate_graph(g, variant="c", source_name="c.tflite", program=program)["edgedigit_native_model.c"]
    n, s = next((n, s) for n, s in enumerate(program.steps) if s.op.opcode == "CONCATENATION")
    ptrs = ", ".join(f"g_arena.bytes + {program.plan.offsets[t]}" for t in s.op.inputs)
    out = program.plan.offsets[s.outputs[0]]
    params = f"EDGEDIGIT_ROM_STRUCT(edgedigit_concat_t, kOp{n}, params)"
    assert f"edgedigit_concatenation({params}, (const int8_t *const[]){{{ptrs}}}, g_arena.bytes + {out});" in code
    assert f"/* op {s.op.index}: CONCATENATION (1, 14, 14, 3) + (1, 14, 14, 2) + (1, 14, 14, 3) -> (1, 14, 14, 8) */" \
        in code


def test_fc_product_float32_by_default_double_as_the_wheel(tiny):
    """Per-tensor FC: float32(s_in * s_w) as TFLM's C++ (the firmware), or the product in double as the wheel."""
    weights = {tiny.tensors[op.inputs[1]].index for op in tiny.ops if op.opcode == "FULLY_CONNECTED"}
    tiny = dataclasses.replace(tiny, tensors=[  # tiny's FC is per channel: make it per tensor
        dataclasses.replace(t, scale=t.scale[:1], zero_point=t.zero_point[:1]) if t.index in weights else t
        for t in tiny.tensors])
    fc_steps = [(n, s) for n, s in enumerate(native.prepare(tiny).steps) if s.op.opcode == "FULLY_CONNECTED"]
    assert fc_steps and native.FC_PRODUCTS == ("float32", "double")
    double = native.prepare(tiny, fc_product="double").steps
    for n, s in fc_steps:
        s_in, s_w, s_out = (np.float32(tiny.tensors[t].scale[0]) for t in (s.op.inputs[0], s.op.inputs[1],
                                                                           s.op.outputs[0]))
        mult = dict((name, v) for _, name, v in s.arrays)[f"g_op{n}_multiplier"]
        wheel = dict((name, v) for _, name, v in double[n].arrays)[f"g_op{n}_multiplier"]
        assert set(mult) == {native.quantize_multiplier(float(s_in * s_w) / float(s_out))[0]}
        assert set(wheel) == {native.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))[0]}
    with pytest.raises(ValueError, match="fc_product must be one of"):
        native.prepare(tiny, fc_product="float64")


# ---- Prepare arithmetic of the new ops ---------------------------------------------------------------------------

def test_broadcast_loops_fuse_like_tflm():
    bl = prepare_module.broadcast_loops
    ones = [1] * 5
    assert bl((1, 14, 14, 4), (1, 14, 14, 4), (1, 14, 14, 4), "w") == (ones + [784], [0] * 5 + [1], [0] * 5 + [1])
    # per-channel broadcast: the spatial loop walks input 1, repeats input 2
    assert bl((1, 14, 14, 4), (1, 1, 1, 4), (1, 14, 14, 4), "w") == ([1] * 4 + [196, 4], [0] * 4 + [4, 1],
                                                                      [0] * 4 + [0, 1])
    # a middle broadcast (1,14,1,4): three loops; the first input aligned at the last dimension (rank 3 -> 4)
    assert bl((14, 14, 4), (1, 14, 1, 4), (1, 14, 14, 4), "w") == ([1] * 3 + [14, 14, 4], [0] * 3 + [56, 4, 1],
                                                                    [0] * 3 + [4, 0, 1])
    assert bl((3,), (), (3,), "w") == (ones + [3], [0] * 5 + [1], [0] * 6)  # a scalar repeats
    assert bl((2, 1), (1, 3), (2, 3), "w") == ([1] * 4 + [2, 3], [0] * 4 + [1, 0], [0] * 5 + [1])
    with pytest.raises(ModelError, match=r"input shapes \(2, 3\) and \(3, 3\) do not broadcast"):
        bl((2, 3), (3, 3), (3, 3), "w")
    with pytest.raises(UnsupportedOpError, match="7-D broadcasting"):
        bl((1,) * 7, (1,) * 7, (1,) * 7, "w")


def test_reduce_loops_and_the_mean_multiplier():
    rl = prepare_module.reduce_loops
    # GlobalAveragePooling2D on (1, 8, 8, 64): 64 outputs, each the sum of 64 elements 64 apart
    assert rl((1, 8, 8, 64), [1, 2], "w") == ([1] * 5 + [64], [0] * 5 + [1], [1] * 5 + [64], [0] * 5 + [64])
    assert rl((1, 14, 14, 6), [-1], "w") == ([1] * 5 + [196], [0] * 5 + [6], [1] * 5 + [6], [0] * 5 + [1])
    assert rl((2, 3, 4), [0, 2, 2], "w") == ([1] * 5 + [3], [0] * 5 + [4], [1] * 4 + [2, 4], [0] * 4 + [12, 1])
    with pytest.raises(ModelError, match="axis 4 is outside"):
        rl((1, 2, 3, 4), [4], "w")
    # reduce.h: s = min(floor(log2 n), 32, 31 + shift); multiplier = (m << s) / n; shift -= s
    assert prepare_module.mean_multiplier(1 << 30, 1, 64) == ((1 << 36) // 64, -5)
    assert prepare_module.mean_multiplier(1518500250, -3, 196) == (int((1518500250 << 7) // 196), -10)
    assert prepare_module.mean_multiplier(1 << 30, -25, 1 << 10) == (1 << 26, -31)  # s clamped to 31 + shift = 6


def test_add_and_mul_multipliers_like_add_common_and_mul_common():
    s1, s2, so = 0.02, 0.05, 0.07
    m = prepare_module.add_multipliers(s1, s2, so, "w")
    f1, f2, fo = (float(np.float32(v)) for v in (s1, s2, so))
    twice = 2 * max(f1, f2)
    assert m["left_shift"] == 20
    assert (m["input1_multiplier"], m["input1_shift"]) == native.quantize_multiplier(f1 / twice)
    assert (m["input2_multiplier"], m["input2_shift"]) == native.quantize_multiplier(0.5) == (1 << 30, 0)
    assert (m["output_multiplier"], m["output_shift"]) == native.quantize_multiplier(twice / (2 ** 20 * fo))
    assert prepare_module.mul_multiplier(s1, s2, so) == native.quantize_multiplier(f1 * f2 / fo)
    with pytest.raises(ModelError, match="outside \\(0, 1\\)"):
        prepare_module.add_multipliers(1.0, 1.0, 2.0 ** -22, "w")


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
        **{k: v for k, v in fresh.items() if k != "edgedigit_native_runner.c"},
        native.ROM_HEADER: (templates_dir() / "runtime" / native.ROM_HEADER).read_text()}
    assert native.ROM_HEADER not in fresh  # the export's src/ gets it with the runtime files


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


def test_constant_tables_are_rom_except_the_plain_operands_of_elementwise_and_layout_kernels(tiny):
    """FC/conv weights, biases, multipliers, shifts and every parameter struct are EDGEDIGIT_ROM (flash on AVR,
    read through EDGEDIGIT_ROM_*); the constant operands ADD/MUL/CONCATENATION read as plain memory are not,
    and they are what the budget counts in RAM where const data is copied to SRAM (AVR)."""
    import re

    program = native.prepare(tiny)
    code = native.generate_graph(tiny, variant="t", source_name="t.tflite", program=program)["edgedigit_native_model.c"]
    arrays = re.findall(r"^static const \w+ (?:EDGEDIGIT_ALIGNED )?(\w+)\[\d+\]( EDGEDIGIT_ROM)? = \{", code, re.M)
    assert [name for name, _ in arrays] == [name for _, name, _ in native.constant_arrays(program)]
    assert arrays and all(rom for _, rom in arrays) and program.ram_tables_bytes == 0
    structs = re.findall(r"^static const (edgedigit_\w+_t) (kOp\d+)( EDGEDIGIT_ROM)? = \{", code, re.M)
    assert len(structs) == 3 and all(rom for *_, rom in structs)
    for ctype, name, _ in structs:
        assert f"EDGEDIGIT_ROM_STRUCT({ctype}, {name}, params)" in code and f"&{name}" not in code
        assert f"        {ctype} p" in code  # a member of the AVR copy's union
    g = load_graph(op_models()["add_const"])
    program = native.prepare(g)
    code = native.generate_graph(g, variant="a", source_name="a.tflite", program=program)["edgedigit_native_model.c"]
    plain = [(ctype, name, values) for s in program.steps if not s.rom for ctype, name, values in s.arrays]
    assert [name for _, name, _ in plain] == ["g_op2_input2", "g_op3_input2"]
    for _, name, _ in plain:
        assert re.search(rf"^static const int8_t {name}\[\d+\] = \{{", code, re.M)
    assert program.ram_tables_bytes == sum(v.size for _, _, v in plain) == 4 * 14 + 4
    assert re.search(r"^static const int8_t EDGEDIGIT_ALIGNED g_op1_weights\[48\] EDGEDIGIT_ROM = \{", code, re.M)
