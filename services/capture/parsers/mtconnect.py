"""haas.modeler.status: the MTConnect `current` document (MTConnectStreams) a Haas Next Generation Control serves
from its built-in MTConnect agent.

Format: the MTConnect standard (ANSI/MTC1.4; https://www.mtconnect.org), as the MTConnect Institute's reference agent
writes it. The fixture in tests/fixtures/capture/haas/ is that agent's own sample `current` document
(mtconnect/cppagent, samples/test_current.xml): the device in it is a LinuxCNC mill, not a Haas, and the parser
reads only what the standard defines (Execution, ControllerMode, Program, PartCount, Availability, EmergencyStop,
Condition), which a Haas control reports the same way. A machining centre has no layers: it reports a state, never a
build.
"""
import xml.etree.ElementTree as ElementTree

from services.capture.parsers import Outcome, ParseError

FORMAT = "mtconnect.streams.current"
# MTConnect Execution → modeler state
EXECUTION = {"ACTIVE": "printing", "READY": "idle", "INTERRUPTED": "idle", "FEED_HOLD": "printing",
             "STOPPED": "idle", "OPTIONAL_STOP": "printing", "PROGRAM_STOPPED": "idle",
             "PROGRAM_COMPLETED": "print_finished", "WAIT": "printing", "PROGRAM_OPTIONAL_STOP": "printing",
             "UNAVAILABLE": "unknown"}
EVENTS = ("Execution", "ControllerMode", "Program", "PartCount", "Availability", "EmergencyStop", "PowerStatus",
          "Line", "Block")


def parse(data, device):
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise ParseError("An MTConnect document has no DOCTYPE or entity declarations; this one does, and is not "
                         "read.")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        raise ParseError(f"The content is not well-formed XML ({error}); was the upload cut short?") from None
    if _local(root.tag) != "MTConnectStreams":
        raise ParseError(f"An MTConnect status capture is an MTConnectStreams document (the agent's /current); "
                         f"this one is <{_local(root.tag)}>.")
    streams = [e for e in root.iter() if _local(e.tag) == "DeviceStream"]
    if not streams:
        raise ParseError("The MTConnectStreams document holds no DeviceStream.")
    stream = _pick(streams, device)
    events = {}
    for element in stream.iter():
        name = _local(element.tag)
        if name in EVENTS and name not in events:
            events[name] = (element.text or "").strip()
    faults = [f"{(e.get('type') or '').lower()}: {(e.text or '').strip() or e.get('nativeCode') or 'fault'}"
              for e in stream.iter() if _local(e.tag) == "Fault"]
    execution = events.get("Execution")
    state = EXECUTION.get(execution, "unknown") if execution is not None else None
    error = None
    if events.get("EmergencyStop") == "TRIGGERED":
        faults.insert(0, "emergency stop triggered")
    if faults:
        state, error = "error", "; ".join(faults)
    if events.get("Availability") == "UNAVAILABLE" and state is None:
        state = "unknown"
    content = {"device": {"name": stream.get("name"), "uuid": stream.get("uuid")},
               "execution": execution, "controller_mode": events.get("ControllerMode"),
               "program": events.get("Program"), "part_count": events.get("PartCount"),
               "availability": events.get("Availability"), "power": events.get("PowerStatus"),
               "faults": faults}
    return Outcome(FORMAT, content, state=state, error=error)


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _pick(streams, device):
    """The stream of this modeler's machine (by serial number or name) when the agent serves several."""
    wanted = {str(device.get(k)) for k in ("serial_number", "name") if device.get(k)}
    for stream in streams:
        if {stream.get("uuid"), stream.get("name")} & wanted:
            return stream
    return streams[0]
