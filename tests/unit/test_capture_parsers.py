"""Parsers of machine captures on the cited public fixtures (tests/fixtures/capture/*/README.md): every asserted value
was read from the fixture by hand. Broken content (truncated, garbage, the wrong document) is a ParseError with a
reason, never another exception."""
import json
from pathlib import Path

import pytest

from services.capture import parsers
from services.capture.parsers import ParseError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
BAMBU = FIXTURES / "bambu" / "push_status_idle.json"
ULTIMAKER = FIXTURES / "ultimaker" / "getClusterStatusResponse.json"
FORMLABS = FIXTURES / "formlabs" / "device_printing.json"
HAAS = FIXTURES / "haas" / "test_current.xml"
ALL = [("bambu.modeler.status", BAMBU), ("ultimaker.modeler.log", ULTIMAKER),
       ("formlabs.modeler.status", FORMLABS), ("haas.modeler.status", HAAS)]


def test_every_fixture_has_its_source_cited():
    for _, path in ALL:
        readme = (path.parent / "README.md").read_text()
        assert path.name in readme and ("Commit:" in readme or "https://" in readme), path


def test_bambu_idle_report():
    outcome = parsers.parse("bambu.modeler.status", BAMBU.read_bytes())
    assert outcome.state == "idle" and outcome.error is None
    assert outcome.jobs == [] and outcome.current_job is None
    content = outcome.as_content()
    assert content["gcode_state"] == "IDLE" and content["command"] == "push_status"
    assert content["sequence_id"] == "2021" and content["wifi_signal"] == "-45dBm"
    assert content["temperatures"] == {"bed_temper": 25.0, "bed_target_temper": 25.0, "nozzle_temper": 25.0,
                                       "nozzle_target_temper": 25.0, "chamber_temper": 24.0}
    assert content["progress_percent"] == 0 and content["remaining_minutes"] == 0
    json.dumps(content, allow_nan=False)


def test_ultimaker_cluster_for_the_printer_at_the_modelers_address():
    outcome = parsers.parse("ultimaker.modeler.log", ULTIMAKER.read_bytes(), {"ip_address": "10.183.1.166"})
    assert outcome.state == "idle"  # UM-Marijn
    [job] = outcome.jobs
    assert job.key == "ultimaker:d1c8bd52-5e9f-486a-8c25-a123cc8c7702"
    assert job.name == "UM3_dragon" and job.status == "backlogged"  # "queued"
    assert job.estimated_time == 14145 and job.start_time is None
    assert job.materials == [{"name": "PLA", "brand": "Ultimaker", "color": "Black",
                              "guid": "3ee70a86-77d8-4b87-8005-e4a1bc57d2ce", "print_core_id": "AA 0.4"}]
    assert outcome.current_job is None  # queued, not printing
    assert outcome.watermark == "2018-12-10T08:28:04.108Z"
    content = outcome.as_content()
    assert content["generated_time"] == "2018-12-10T08:23:55.110Z"
    assert content["printer"]["name"] == "UM-Marijn" and content["printer"]["firmware_version"] == "4.3.3.20180529"
    assert [p["status"] for p in content["printers"]] == ["maintenance", "idle"]


def test_ultimaker_printer_found_by_serial_and_jobs_only_its_own():
    outcome = parsers.parse("ultimaker.modeler.log", ULTIMAKER.read_bytes(),
                            {"serial_number": "ultimakersystem-ccbdd30044ec"})
    assert outcome.state == "maintenance"  # Master-Luke
    assert outcome.jobs == []  # the one job is assigned to UM-Marijn


def test_ultimaker_cluster_without_a_matching_printer_gives_jobs_but_no_state():
    outcome = parsers.parse("ultimaker.modeler.log", ULTIMAKER.read_bytes(), {"ip_address": "192.0.2.1"})
    assert outcome.state is None and not outcome.reports_state
    assert [j.name for j in outcome.jobs] == ["UM3_dragon"]


def test_formlabs_device_mid_print():
    outcome = parsers.parse("formlabs.modeler.status", FORMLABS.read_bytes())
    assert outcome.state == "printing" and outcome.error is None and outcome.jobs == []
    content = outcome.as_content()
    assert content["id"] == "ColdKoala" and content["product_name"] == "Form 3+"
    assert content["firmware_version"] == "2.4.0-2216" and content["ip_address"] == "192.168.1.14"
    assert content["estimated_print_time_remaining_ms"] == pytest.approx(12540660.950245794)
    assert content["tank"] == {"id": "4c-000000b42564", "material_code": "FLTO2001"}
    assert content["cartridges"] == [{"id": "4c-0000005bfccc", "material_code": "FLTO2001", "dispensed_ml": 3.3,
                                      "original_ml": 1000}]


def test_mtconnect_current_document():
    outcome = parsers.parse("haas.modeler.status", HAAS.read_bytes())
    assert outcome.state == "idle" and outcome.error is None  # Execution READY
    content = outcome.as_content()
    assert content["device"] == {"name": "LinuxCNC", "uuid": "000"}
    assert content["execution"] == "READY" and content["controller_mode"] == "AUTOMATIC"
    assert content["program"] == "/home/mtconnect/simulator/spiral.ngc" and content["power"] == "ON"


@pytest.mark.parametrize("kind, path", ALL, ids=[k for k, _ in ALL])
@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_content_is_a_parse_error(kind, path, cut):
    data = path.read_bytes()
    with pytest.raises(ParseError) as refused:
        parsers.parse(kind, data[:int(len(data) * cut)])
    assert "cut short" in str(refused.value)


@pytest.mark.parametrize("kind, path", ALL, ids=[k for k, _ in ALL])
@pytest.mark.parametrize("garbage", [b"\x00\xff\xfe garbage \x89PNG", b"{}", b"[]", b"   ", b"null", b"<a/>"])
def test_garbage_is_a_parse_error(kind, path, garbage):
    with pytest.raises(ParseError) as refused:
        parsers.parse(kind, garbage)
    assert str(refused.value)


@pytest.mark.parametrize("kind, other", [("bambu.modeler.status", ULTIMAKER), ("ultimaker.modeler.log", BAMBU),
                                         ("formlabs.modeler.status", HAAS), ("haas.modeler.status", FORMLABS)])
def test_another_machines_file_is_a_parse_error(kind, other):
    with pytest.raises(ParseError):
        parsers.parse(kind, other.read_bytes())


def test_xml_entities_are_refused():
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><MTConnectStreams>&a;</MTConnectStreams>'
    with pytest.raises(ParseError, match="DOCTYPE"):
        parsers.parse("haas.modeler.status", bomb)


def test_deep_nesting_fails_the_capture_not_the_parser_caller():
    deep = b"[" * 100000 + b"]" * 100000
    with pytest.raises((ParseError, RecursionError)):
        parsers.parse("bambu.modeler.status", deep)


def test_a_kind_without_a_parser_says_so():
    with pytest.raises(ParseError, match="no parser for 'hp.modeler.status'"):
        parsers.parse("hp.modeler.status", b"{}")


def test_bambu_states_map_into_the_modeler_vocabulary():
    report = json.loads(BAMBU.read_bytes())
    for gcode_state, expected in (("RUNNING", "printing"), ("FINISH", "print_finished"), ("FAILED", "error"),
                                  ("SLICING", "printing"), ("whatever", "unknown")):
        report["print"]["gcode_state"] = gcode_state
        assert parsers.parse("bambu.modeler.status", json.dumps(report).encode()).state == expected
    report["print"]["print_error"] = 50348044
    assert parsers.parse("bambu.modeler.status", json.dumps(report).encode()).error == "print_error 50348044"
