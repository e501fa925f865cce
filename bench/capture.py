"""Sensor-reading ingestion benchmark (issue 17 item 6): readings/s stored and queryable by the capture service,
against a raw pika publish/consume loop measured in the same run, and the bytes on disk per million readings, on
PostgreSQL and SQLite.

    python -m bench.capture [--readings 200000] [--sensors 100] [--only postgres|sqlite]      (or `make bench-capture`)

Per backend, one run makes a throwaway RabbitMQ vhost (and PostgreSQL database), creates the capture service's
tables (runtime.migrate's step for it) and `--sensors` sensors, then measures:

(raw)     the ceiling: a pika publisher (this process, persistent messages, one reading per message) and a pika
          consumer in a child process (prefetch 2000, one multiple-ack per 1000 messages, as the capture service) on a fresh queue bound to
          amq.topic — readings/s from the first publish to the last message consumed. This is what the broker and
          pika can move on this machine with nothing stored;
(stratum) the same publisher, the same messages (stratum.sensor.<uuid>.reading on amq.topic), the capture service
          running in a child process (nameko, services.capture.ingest) — readings/s from the first publish until the
          last reading is committed in the readings table (polled by its primary key, then COUNT(*) checks that
          every reading is there), i.e. stored and queryable by
          /sensor-data/; one query of the kind /sensor-data/ makes (a page, a bucketed day) is timed after;
(size)    the readings table's bytes on disk (PostgreSQL: pg_total_relation_size, table + primary key; SQLite: its
          pages in dbstat, the WITHOUT ROWID table being its own key) ÷ readings × 1,000,000.

The goal (issue 17 item 6): stratum ≥ 0.5 × raw. No timing is asserted: this prints a report and writes it as JSON
to bench/results/.
"""
import sys

if "--serve" in sys.argv:  # the capture service's child process: patched before psycopg and its pool are imported
    import eventlet
    eventlet.monkey_patch()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import multiprocessing
import os
import platform
import sqlite3
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pika
import psycopg

from bench.write_path import AMQP_BASE, PG_ADMIN_DSN, throwaway_database, throwaway_vhost
from runtime.config import build_config

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
GOAL = 0.5
RAW_PREFETCH = 2000
RAW_ACK_EVERY = 1000
T0 = 1_690_000_000_000  # epoch ms, 2023-07-22
STORE_TIMEOUT = 600


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- the messages -------------------------------------------------------------------------------------------------

def messages(sensors, count):
    """(routing key, body) of `count` readings spread over the sensors, one reading per message, 30 s apart per
    sensor (every timestamp distinct per sensor, so every reading is stored)."""
    from services.capture.ingest import routing_key
    from services.capture.readings import from_millis
    for index in range(count):
        sensor = sensors[index % len(sensors)]
        at = T0 + (index // len(sensors)) * 30_000
        body = {"timestamp": from_millis(at), "temperature": round(18 + (index % 97) / 10, 1),
                "humidity": round(35 + (index % 53) / 10, 1)}
        yield routing_key(sensor), json.dumps(body).encode()


def publish(amqp_uri, batch):
    """Publish the prepared messages on amq.topic with pika, persistent, as fast as the broker takes them."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    properties = pika.BasicProperties(delivery_mode=2)
    for key, body in batch:
        channel.basic_publish("amq.topic", key, body, properties)
    connection.close()


# -- (raw) the pika loop ----------------------------------------------------------------------------------------------

def raw_consume(amqp_uri, queue, count, ready, done):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=RAW_PREFETCH)
    seen = [0]

    def on_message(ch, method, properties, body):
        seen[0] += 1
        if seen[0] % RAW_ACK_EVERY == 0 or seen[0] == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if seen[0] == count:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    ready.set()
    channel.start_consuming()
    done.value = time.time()
    connection.close()


def measure_raw(amqp_uri, batch):
    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, "amq.topic", "stratum.sensor.*.reading")
    connection.close()
    ready, done = multiprocessing.Event(), multiprocessing.Value("d", 0.0)
    consumer = multiprocessing.Process(target=raw_consume, args=(amqp_uri, queue, len(batch), ready, done))
    consumer.start()
    ready.wait(30)
    start = time.time()
    publish(amqp_uri, batch)
    published = time.time()
    consumer.join(STORE_TIMEOUT)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    connection.channel().queue_delete(queue)
    connection.close()
    return {"readings": len(batch), "seconds": round(done.value - start, 3),
            "publish_seconds": round(published - start, 3),
            "readings_per_second": round(len(batch) / (done.value - start))}


# -- (stratum) the capture service ------------------------------------------------------------------------------------

def serve(config_path):
    """Child process: the capture service alone, as `make run` starts it (nameko, eventlet)."""
    from nameko.runners import ServiceRunner
    from services.capture.service import CaptureService
    with open(config_path) as handle:
        config = json.load(handle)
    runner = ServiceRunner(config)
    runner.add_service(CaptureService)
    runner.start()
    print("ready", flush=True)
    try:
        runner.wait()
    except KeyboardInterrupt:
        runner.kill()


def stored_count(config):
    if config.get("STRATUM_POSTGRES_DSN"):
        with psycopg.connect(config["STRATUM_POSTGRES_DSN"]) as conn:
            return conn.execute("SELECT COUNT(*) FROM capture.sensor_readings").fetchone()[0]
    with contextlib.closing(sqlite3.connect(os.path.join(config["STRATUM_DATA_DIR"], "capture.sqlite"))) as conn:
        return conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0]


def has_reading(config, sensor, timestamp):
    from services.capture.readings import to_millis
    if config.get("STRATUM_POSTGRES_DSN"):
        with psycopg.connect(config["STRATUM_POSTGRES_DSN"]) as conn:
            return conn.execute("SELECT 1 FROM capture.sensor_readings r JOIN capture.sensor_keys k ON k.key = "
                                "r.sensor WHERE k.sensor = %s AND r.at = %s", (sensor, to_millis(timestamp))
                                ).fetchone() is not None
    with contextlib.closing(sqlite3.connect(os.path.join(config["STRATUM_DATA_DIR"], "capture.sqlite"))) as conn:
        return conn.execute("SELECT 1 FROM sensor_readings r JOIN sensor_keys k ON k.key = r.sensor "
                            "WHERE k.sensor = ? AND r.at = ?", (sensor, to_millis(timestamp))).fetchone() is not None


def measure_stratum(config, batch, workdir):
    config_path = os.path.join(workdir, "config.json")
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    child = subprocess.Popen([sys.executable, "-m", "bench.capture", "--serve", config_path], cwd=ROOT,
                             stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True)
    try:
        assert child.stdout.readline().strip() == "ready", "the capture service did not start"
        time.sleep(1.0)  # its consumers declare and bind their queues
        start = time.time()
        publish(config["AMQP_URI"], batch)
        published = time.time()
        deadline = start + STORE_TIMEOUT
        last = json.loads(batch[-1][1])["timestamp"]
        # batches commit in delivery order: once the last reading is in, all are (checked by the count after); its
        # primary-key lookup costs the service nothing, where polling COUNT(*) would scan the table each time
        while not has_reading(config, batch[-1][0].split(".")[2], last):
            if time.time() > deadline:
                raise TimeoutError(f"only {stored_count(config)} of {len(batch)} readings were stored")
            time.sleep(0.02)
        stored = time.time()
        while stored_count(config) < len(batch):  # a batch given back to the broker comes after the last one
            if time.time() > deadline:
                raise TimeoutError(f"only {stored_count(config)} of {len(batch)} readings were stored")
            time.sleep(0.1)
            stored = time.time()
    finally:
        child.terminate()
        child.wait(30)
    return {"readings": len(batch), "seconds": round(stored - start, 3),
            "publish_seconds": round(published - start, 3),
            "readings_per_second": round(len(batch) / (stored - start))}


def queries(app, sensor):
    """Time one /sensor-data/ page and one bucketed day of one sensor, as the capture service answers them."""
    from services.capture.sensor_data import sensor_data
    ctx = {"platform_admin": True}
    query = {"from": None, "to": None, "descending": False, "limit": 1000, "offset": 0, "after": None,
             "bucket": None}
    timings = {}
    for name, extra in (("page_of_1000", {}), ("day_in_hourly_buckets", {"bucket": 3600})):
        start = time.perf_counter()
        page = sensor_data(app, [sensor], dict(query, **extra), ctx)
        timings[name] = {"ms": round((time.perf_counter() - start) * 1000, 1), "rows": len(page["rows"]),
                         "total": page["total"]}
    return timings


# -- one backend ------------------------------------------------------------------------------------------------------

def run_backend(backend, count, sensor_count):
    from runtime.migrate import create_tables
    from services.capture.application import Capture
    from shared.settings import event_store_env

    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="stratum-bench-capture-"))
        amqp_uri = stack.enter_context(throwaway_vhost(AMQP_BASE))
        settings = {"STRATUM_DATA_DIR": workdir, "AMQP_URI": amqp_uri, "STRATUM_LOG_LEVEL": "WARNING"}
        if backend == "postgres":
            settings["STRATUM_POSTGRES_DSN"] = stack.enter_context(throwaway_database(PG_ADMIN_DSN))
        config = build_config(settings, environ={})
        create_tables(config, Capture)
        app = Capture(env=event_store_env(config, "capture"))
        try:
            bureau = f"/bureau/{uuid.uuid4()}/"
            sensors = [app.create("sensor", {"serial_number": f"BENCH-{i:05d}", "sub_location":
                                             f"/sub-location/{uuid.uuid4()}/"},
                                  {"platform_admin": True, "bureau": bureau, "command_id": str(uuid.uuid4())}
                                  )["uri"].split("/")[2] for i in range(sensor_count)]
            batch = list(messages(sensors, count))
            log(f"{backend}: raw pika loop, {count} messages")
            raw = measure_raw(amqp_uri, batch)
            log(f"{backend}: raw {raw['readings_per_second']} readings/s; now the capture service")
            stratum = measure_stratum(config, batch, workdir)
            log(f"{backend}: stratum {stratum['readings_per_second']} readings/s stored and queryable")
            size = app.readings.size_on_disk()
            timings = queries(app, sensors[0])
        finally:
            app.close()
    return {"raw_pika": raw, "stratum": stratum,
            "ratio": round(stratum["readings_per_second"] / raw["readings_per_second"], 3),
            "bytes_on_disk": size, "bytes_per_million_readings": round(size / count * 1_000_000),
            "queries": timings}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--only", choices=("postgres", "sqlite"))
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    report = {"benchmark": "capture-sensor-readings", "date": datetime.now(timezone.utc).isoformat(),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average": list(os.getloadavg())},
              "readings": args.readings, "sensors": args.sensors, "goal_ratio": GOAL, "backends": {}}
    for backend in ("postgres", "sqlite"):
        if args.only in (None, backend):
            report["backends"][backend] = run_backend(backend, args.readings, args.sensors)
    report["machine"]["load_average_after"] = list(os.getloadavg())
    print_report(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"capture-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    log(f"report written to {out}")


def print_report(report):
    print(f"Sensor readings, {report['readings']} readings over {report['sensors']} sensors, one per message "
          f"(load average {report['machine']['load_average'][0]:.1f})")
    for backend, result in report["backends"].items():
        verdict = "meets" if result["ratio"] >= GOAL else "misses"
        print(f"  {backend:8}  raw pika {result['raw_pika']['readings_per_second']:>7}/s   stratum stored+queryable "
              f"{result['stratum']['readings_per_second']:>7}/s   ratio {result['ratio']:.2f} ({verdict} ≥ {GOAL})   "
              f"{result['bytes_per_million_readings'] / 1e6:.1f} MB per million readings")
        for name, timing in result["queries"].items():
            print(f"            {name}: {timing['ms']} ms ({timing['rows']} rows of {timing['total']})")


if __name__ == "__main__":
    main()
