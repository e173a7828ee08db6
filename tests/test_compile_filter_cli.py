"""Programs as tcpdump makes them: compile_filter(interface=...) and `afpacket compile-filter` against
`tcpdump -d/-dd/-ddd -i IFACE` on a live veth end, and raw programs that are refused with the line and the
reason. No ring is involved, so each test runs once (``core`` is not parametrised here)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from afpacket import FilterError, compile_filter
from afpacket.filter import MAX_INSNS, BpfProgram, linktype_value, parse_program
from afpacket.testnet import VethPair


@pytest.fixture
def core() -> str:
    return "c"


@pytest.fixture(scope="module")
def veth() -> Iterator[VethPair]:
    with VethPair("afcf") as pair:
        yield pair


def tcpdump(*args: str) -> str:
    return subprocess.run(["tcpdump", *args], capture_output=True, text=True, check=True).stdout.rstrip("\n")


def afpacket(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "afpacket", *args], capture_output=True, text=True, timeout=30)


EXPRESSIONS = [
    "udp port 53", "vlan 100", "vlan and udp", "vlan 100 and vlan 200", "tcp[tcpflags] & tcp-syn != 0", "ip6", "arp",
    "icmp", "host 198.18.0.2", "net 10.0.0.0/8", "ether host 02:00:00:00:00:01", "greater 100", "not port 22",
    "ip broadcast", "inbound", "ether proto 0x88b5", "mpls", "udp portrange 9000-9099 or icmp6", "",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_program_equals_tcpdump_ddd_for_the_interface(veth: VethPair, expr: str) -> None:
    prog = compile_filter(expr, interface=veth.outer)
    assert prog.interface == veth.outer
    assert prog.dump(3) == tcpdump("-ddd", "-i", veth.outer, expr)


@pytest.mark.parametrize("expr", ["udp port 53", "vlan 100", "tcp[tcpflags] & tcp-syn != 0", "not port 22"])
@pytest.mark.parametrize("options", [("-s", "96"), ("-O",), ("-O", "-s", "1500")])
def test_snaplen_and_no_optimizer_equal_tcpdump(veth: VethPair, expr: str, options: tuple[str, ...]) -> None:
    snaplen = int(options[options.index("-s") + 1]) if "-s" in options else 262144
    prog = compile_filter(expr, interface=veth.outer, snaplen=snaplen, optimize="-O" not in options)
    assert prog.dump(3) == tcpdump("-ddd", *options, "-i", veth.outer, expr)


def test_readable_and_c_array_forms_equal_tcpdump(veth: VethPair) -> None:
    prog = compile_filter("vlan and udp port 53", interface=veth.outer)
    assert prog.dump(1) == tcpdump("-d", "-i", veth.outer, "vlan and udp port 53")
    assert prog.dump(2) == tcpdump("-dd", "-i", veth.outer, "vlan and udp port 53")
    assert parse_program(prog.dump(3)).instructions == prog.instructions  # -ddd and -dd read back
    assert parse_program(prog.dump(2)).instructions == prog.instructions
    assert compile_filter("vlan 100").dump(1) != prog.dump(1)  # a dead handle reads tags from the bytes


@pytest.mark.parametrize("level", ["-d", "-dd", "-ddd"])
def test_cli_prints_what_tcpdump_prints(veth: VethPair, level: str) -> None:
    r = afpacket("compile-filter", level, "-i", veth.outer, "vlan", "100", "and", "udp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip("\n") == tcpdump(level, "-i", veth.outer, "vlan 100 and udp")


def test_cli_options_without_an_interface(tmp_path: object) -> None:
    r = afpacket("compile-filter", "-ddd", "-O", "-s", "200", "udp", "port", "53")
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip("\n") == tcpdump("-ddd", "-O", "-s", "200", "-y", "EN10MB", "udp port 53")
    r = afpacket("compile-filter", "-y", "RAW", "udp")
    assert r.stdout.rstrip("\n") == compile_filter("udp", linktype=linktype_value("RAW")).dump(1)
    assert linktype_value("dlt_raw") == linktype_value("12") == 12


def test_a_down_interface_compiles_dead(veth: VethPair) -> None:
    subprocess.run(["ip", "link", "set", veth.outer, "down"], check=True)
    try:
        # an expression not compiled for it before (a program compiled while it was up stays cached)
        prog = compile_filter("vlan 101", interface=veth.outer)
        r = afpacket("compile-filter", "-i", veth.outer, "vlan", "101")
    finally:
        subprocess.run(["ip", "link", "set", veth.outer, "up"], check=True)
    assert prog.interface is None and prog == compile_filter("vlan 101")
    assert r.returncode == 0 and "compiled for Ethernet on a dead handle" in r.stderr
    assert r.stdout.rstrip("\n") == prog.dump(1)


# -- bad input ---------------------------------------------------------------------------------------------

BAD_PROGRAMS: list[tuple[object, str]] = [
    ("", "the BPF program is empty"),
    ([], "has no instructions"),
    ("2\n6 0 0 0\n", "line 1: the count says 2 instructions but 1 follow"),
    ("x\n6 0 0 0\n", "line 1: the instruction count 'x' is not a number"),
    ("1\n6 0 0\n", "line 2: '6 0 0' is not a 'code jt jf k' line"),
    ("1\n6 0 0 zz\n", "line 2: k 'zz' is not a number"),
    ("1\n6 0 0 4294967296\n", r"line 2: k 4294967296 is out of range \(0..4294967295\)"),
    ("{ 0x6, 0, 0, 0x00000000 },\n{ 0x6, 0 },\n", r"line 2: '\{ 0x6, 0 \},' is not a '\{ code, jt, jf, k \},' line"),
    ([(0x10006, 0, 0, 0)], r"instruction 0: code 65542 is out of range \(0..65535\)"),
    ([(0x15, 256, 0, 0), (6, 0, 0, 0)], r"instruction 0: jt 256 is out of range \(0..255\)"),
    ([(6, 0, 0, -1)], "instruction 0: k -1 is out of range"),
    ([(6, 0, 0)], r"instruction 0: \(6, 0, 0\) is not a \(code, jt, jf, k\) tuple of 4 integers"),
    ([(6, 0, 0, 1.5)], "is not a \\(code, jt, jf, k\\) tuple"),
    ([(6, 0, 0, 0)] * (MAX_INSNS + 1), "4097 instructions; the kernel takes at most 4096"),
    ([(0x28, 0, 0, 12)], "instruction 0: the last instruction must be a ret"),
    ([(0x15, 5, 0, 1), (6, 0, 0, 0)], "instruction 0: jt 5 jumps to instruction 6, past the program's end"),
    ([(0x05, 0, 0, 1), (6, 0, 0, 0)], "instruction 0: ja target 1 jumps to instruction 2"),
    ([(0xFF, 0, 0, 0), (6, 0, 0, 0)], "opcode 0xff is not a classic BPF instruction"),
    ([(0x34, 0, 0, 0), (6, 0, 0, 0)], "division by the constant 0"),
    ([(0x64, 0, 0, 32), (6, 0, 0, 0)], "shift by 32"),
    ([(0x60, 0, 0, 16), (6, 0, 0, 0)], r"scratch memory slot 16 does not exist"),
    ("3\n40 0 0 12\n21 0 5 2048\n6 0 0 0\n", "line 3: jf 5 jumps to instruction 7"),
]


@pytest.mark.parametrize(("program", "message"), BAD_PROGRAMS)
def test_bad_raw_programs_name_the_place_and_the_cause(program: object, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_program(program)


def test_raw_program_forms() -> None:
    want = ((48, 0, 0, 9), (21, 0, 1, 6), (6, 0, 0, 1), (6, 0, 0, 0))
    assert parse_program("4\n48 0 0 9\n21 0 1 6\n6 0 0 1\n6 0 0 0\n").instructions == want
    assert parse_program("4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0").instructions == want  # iptables --bytecode
    assert parse_program([list(i) for i in want]).instructions == want
    prog = BpfProgram(want)
    assert parse_program(prog) is prog
    with pytest.raises(TypeError, match="not float"):
        parse_program(1.5)
    with pytest.raises(FilterError, match="level must be 1"):
        prog.dump(4)


def test_bad_expressions_and_interfaces() -> None:
    with pytest.raises(FilterError, match=r"bad filter expression 'vlan 5000': VLAN tag 5000 greater than maximum"):
        compile_filter("vlan 5000", interface="lo")
    with pytest.raises(FilterError, match=r"interface 'nosuch0': No such device exists \(libpcap\)"):
        compile_filter("udp", interface="nosuch0")
    with pytest.raises(FilterError, match="unknown link type 'FOO'"):
        linktype_value("FOO")
    with pytest.raises(FilterError, match=r"looks like tcpdump -ddd/-dd output: pass afpacket.parse_program\(text\)"):
        compile_filter("1\n6 0 0 0\n", interface="lo")


@pytest.mark.parametrize(("args", "message", "status"), [
    (["udp", "prot", "53"], "afpacket: bad filter expression 'udp prot 53': can't parse filter expression: syntax "
                            "error", 1),
    (["-i", "nosuch0", "udp"], "afpacket: cannot compile filter 'udp' for interface 'nosuch0': No such device "
                               "exists (libpcap)", 1),
    (["-y", "FOO", "udp"], "afpacket: unknown link type 'FOO'", 1),
    (["-dddd", "udp"], "Error: -d, -dd and -ddd are the three forms", 2),
    (["-i", "lo", "-y", "EN10MB", "udp"], "Error: -i and -y exclude each other", 2),
])
def test_cli_bad_input_is_one_line(args: list[str], message: str, status: int) -> None:
    r = afpacket("compile-filter", *args)
    assert r.returncode == status and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""


def _fds_and_maps() -> tuple[int, int]:
    import os

    with open("/proc/self/maps") as f:
        return len(os.listdir("/proc/self/fd")), sum(1 for _ in f)


def test_live_compiles_leave_no_handle_behind(veth: VethPair) -> None:
    compile_filter("udp port 1", interface=veth.outer)  # warm up libpcap and the cache
    before = _fds_and_maps()
    for port in range(2, 12):  # each one new: a libpcap handle activated and closed again
        assert compile_filter(f"udp port {port}", interface=veth.outer).interface == veth.outer
    assert _fds_and_maps() == before
