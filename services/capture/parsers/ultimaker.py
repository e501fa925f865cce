"""ultimaker.modeler.log: the print jobs (and printers) of an UltiMaker Cura Connect cluster, as its cluster API
reports them (`/cluster-api/v1/` locally; the same objects through UltiMaker's cloud).

Format: the cluster status Cura itself reads, in Cura's UM3NetworkPrinting plugin (Ultimaker/Cura,
plugins/UM3NetworkPrinting/src/Models/Http/ClusterPrinterStatus.py and ClusterPrintJobStatus.py); the fixture in
tests/fixtures/capture/ultimaker/ is the plugin's own test fixture getClusterStatusResponse.json
({"data": [{"generated_time", "printers", "print_jobs"}]}). The unwrapped object ({"printers", "print_jobs"}) is read
too.

The modeler is one printer of the cluster, found by its ip_address or serial number (a printer's `unique_name` or
`uuid`): its `status` is the modeler's state, and the jobs assigned to or printed on it are its builds. A modeler that
matches no printer of the cluster gets every job and no state.
"""
from services.capture.parsers import Job, Outcome, ParseError, expect, number, read_json

FORMAT = "ultimaker.cluster.status"
PRINTER_STATES = {"idle": "idle", "printing": "printing", "pre_print": "printing", "paused": "printing",
                  "pausing": "printing", "resuming": "printing", "wait_cleanup": "print_finished",
                  "maintenance": "maintenance", "error": "error"}
JOB_STATUSES = {"queued": "backlogged", "pre_print": "preheat", "printing": "processing", "pausing": "paused",
                "paused": "paused", "resuming": "processing", "post_print": "processing",
                "wait_cleanup": "complete", "finished": "complete", "aborted": "cancelled", "failed": "failed",
                "wait_user_action": "waiting_for_resolution"}
RUNNING = ("pre_print", "printing", "pausing", "paused", "resuming", "post_print")


def parse(data, device):
    doc = expect(read_json(data, "An UltiMaker cluster status"), dict, "An UltiMaker cluster status")
    cluster = doc
    if "data" in doc:
        data_list = expect(doc["data"], list, "'data'")
        if not data_list:
            raise ParseError("'data' is empty: the cluster status holds no cluster.")
        cluster = expect(data_list[0], dict, "'data[0]'")
    if "print_jobs" not in cluster or "printers" not in cluster:
        raise ParseError("An UltiMaker cluster status has 'printers' and 'print_jobs' (Cura's "
                         "getClusterStatusResponse); this one has: " + (", ".join(sorted(cluster)) or "nothing") + ".")
    printers = [expect(p, dict, "each of 'printers'") for p in expect(cluster["printers"], list, "'printers'")]
    jobs = [expect(j, dict, "each of 'print_jobs'") for j in expect(cluster["print_jobs"], list, "'print_jobs'")]
    printer = _match(printers, device)
    state = None
    if printer is not None:
        state = PRINTER_STATES.get(str(printer.get("status", "")).lower(), "unknown")
    mine = [j for j in jobs if printer is None or printer.get("uuid") in (j.get("assigned_to"), j.get("printer_uuid"),
                                                                            j.get("printed_on_uuid"))]
    builds = [_job(j, n) for n, j in enumerate(mine)]
    current = next((b.key for b, j in zip(builds, mine) if str(j.get("status", "")).lower() in RUNNING), None)
    created = [b.created for b in builds if b.created]
    content = {"generated_time": cluster.get("generated_time"),
               "printer": _printer(printer) if printer else None,
               "printers": [_printer(p) for p in printers],
               "print_jobs": len(jobs)}
    return Outcome(FORMAT, content, state=state, current_job=current if printer else None, jobs=builds,
                   watermark=max(created) if created else None)


def _match(printers, device):
    ip, serial = device.get("ip_address"), device.get("serial_number")
    for printer in printers:
        if ip and printer.get("ip_address") == ip:
            return printer
        if serial and serial in (printer.get("unique_name"), printer.get("uuid")):
            return printer
    return None


def _printer(p):
    return {"uuid": p.get("uuid"), "name": p.get("friendly_name"), "unique_name": p.get("unique_name"),
            "ip_address": p.get("ip_address"), "machine_variant": p.get("machine_variant"),
            "status": p.get("status"), "firmware_version": p.get("firmware_version"), "enabled": p.get("enabled")}


def _job(job, index):
    key = job.get("uuid")
    if not isinstance(key, str) or not key:
        raise ParseError(f"print_jobs[{index}] has no 'uuid' (every cluster print job has one).")
    status = str(job.get("status", "")).lower()
    total = number(job.get("time_total"))
    materials = []
    for extruder in job.get("configuration") or []:
        material = extruder.get("material") if isinstance(extruder, dict) else None
        if isinstance(material, dict) and material.get("material") not in (None, "empty"):
            materials.append({"name": material.get("material"), "brand": material.get("brand"),
                              "color": material.get("color"), "guid": material.get("guid"),
                              "print_core_id": extruder.get("print_core_id")})
    return Job(key=f"ultimaker:{key}", name=str(job.get("name") or key),
               status=JOB_STATUSES.get(status, "unknown"), estimated_time=total,
               materials=materials,
               created=job.get("created_at") if isinstance(job.get("created_at"), str) else None)
