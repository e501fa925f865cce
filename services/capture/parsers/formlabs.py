"""formlabs.modeler.status: a Formlabs printer as Formlabs' Local API describes it (PreFormServer,
`GET /devices/{id}`; https://formlabs-dashboard-api-resources.s3.amazonaws.com/formlabs-local-api-latest.html).

The fixture in tests/fixtures/capture/formlabs/ is the device document an openHAB user published from a Form 3+
mid-print (https://community.openhab.org/t/oh4-formlabs-sla-printer-via-http-binding/160644), with the `status`
values seen there: "Printing", "Idle" (not printing and not ready: shown after a print has finished) and
"Ready to print". The document names no job, so it sets the modeler's state and error, never a build.
"""
from services.capture.parsers import Outcome, ParseError, expect, number, read_json

FORMAT = "formlabs.local_api.device"
STATES = {"printing": "printing", "idle": "idle", "ready to print": "ready_to_print", "error": "error",
          "paused": "printing", "finished": "print_finished"}


def parse(data, device):
    doc = expect(read_json(data, "A Formlabs device"), dict, "A Formlabs device")
    for required in ("id", "status"):
        if required not in doc:
            raise ParseError(f"A Formlabs device (PreFormServer GET /devices/{{id}}) has '{required}'; this one "
                             "does not.")
    status = expect(doc["status"], str, "'status'")
    state = STATES.get(status.strip().lower(), "unknown")
    error = None
    if doc.get("is_connected") is False:
        state, error = "error", "PreFormServer cannot reach the printer (is_connected: false)."
    cartridges = doc.get("cartridge_data") if isinstance(doc.get("cartridge_data"), dict) else {}
    content = {
        "id": doc["id"],
        "product_name": doc.get("product_name"),
        "status": status,
        "is_connected": doc.get("is_connected"),
        "ready_to_print_now": doc.get("ready_to_print_now"),
        "firmware_version": doc.get("firmware_version"),
        "ip_address": doc.get("ip_address"),
        "connection_type": doc.get("connection_type"),
        "estimated_print_time_remaining_ms": number(doc.get("estimated_print_time_remaining_ms")),
        "tank": {"id": doc.get("tank_id"), "material_code": doc.get("tank_material_code")},
        "cartridges": [{"id": key,
                        "material_code": value.get("cartridgeMaterialCode") if isinstance(value, dict) else None,
                        "dispensed_ml": number(value.get("cartridgeEstimatedVolumeDispensed_mL"))
                        if isinstance(value, dict) else None,
                        "original_ml": number(value.get("cartridgeOriginalVolume_mL"))
                        if isinstance(value, dict) else None}
                       for key, value in sorted(cartridges.items())],
    }
    return Outcome(FORMAT, content, state=state, error=error)
