"""How the batch-action ledger and its genealogy scale (issue 14 item 3): N batch actions on one material, on the
materials application with an in-memory SQLite store (no broker, no gateway), reporting the cost of an action as the
ledger grows and the size of the /material-genealogy/ documents a query reads in one request.

    PYTHONPATH=. .venv/bin/python -m bench.genealogy [--actions 10000]

The workload is a powder's life in a busy bureau: batches are split off, loaded, unloaded, sieved, topped off and
blended back together, so ancestries grow long and interleave (the worst case for trees kept current on write).
Reports, not tests: nothing here asserts a timing."""
import argparse
import json
import random
import statistics
import time

from services.materials.domain import MaterialGenealogy
from shared.errors import InvalidPayload
from shared.uris import parse_uri
from tests.unit.materials_kit import Kit

PRINTER = "/printer/44444444-4444-4444-4444-444444444444/"
PRINTERS = {PRINTER: {"printer_type": "/printer-type/55555555-5555-5555-5555-555555555555/"}}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    kit = Kit(AGGREGATE_CACHE_MAXSIZE="100000")
    material = kit.material()
    batches, timings, refused = [], [], 0
    done = 0
    while done < args.actions:
        live = [b for b in batches if kit.aggregate(b).fields.get("status") != "done"]
        started = time.perf_counter()
        try:
            if len(live) < 3:
                lot = kit.lot(material=material, containers=2, size=100.0)
                batches.append(kit.initial_batch(lot))
            else:
                batch = rng.choice(live)
                b = kit.aggregate(batch).fields
                step = rng.choice(["split", "load", "unload", "sieve", "top_off", "blend", "test"])
                if step == "split" and b["quantity_available_for_actions"] > 2:
                    batches.append(kit.act("split_batch", batch, round(b["quantity_available_for_actions"] / 3, 3)))
                elif step == "load" and b["quantity_available_for_actions"] > 1 and not b.get("at_machine"):
                    kit.act("machine_load", batch, round(b["quantity_available_for_actions"] / 2, 3),
                            printer=PRINTER, printers=PRINTERS)
                elif step in ("unload", "top_off") and b.get("at_machine"):
                    if step == "unload":
                        kit.act("machine_unload_chamber", batch, round(b["reserved_quantity"] * 0.9, 3))
                    else:
                        donor = rng.choice([d for d in live if d != batch])
                        kit.act("machine_top_off", batch, 0.5, batch_to_load=donor)
                elif step == "blend" and not b.get("at_machine"):
                    other = rng.choice([d for d in live if d != batch])
                    batches.append(kit.act("blend_batches", batch, batches=[other]))
                elif step == "sieve" and not b.get("at_machine"):
                    kit.act("sieve", batch)
                else:
                    kit.act("test", batch, 0.01)
        except InvalidPayload:
            refused += 1
        timings.append(time.perf_counter() - started)
        done += 1
    deepest, widest = 0, 0
    for batch in batches:
        genealogy = kit.get(f"/material-genealogy/{MaterialGenealogy.id_for(parse_uri(batch)[1])}/")
        size = len(json.dumps(genealogy))
        widest = max(widest, size)
        deepest = max(deepest, _depth(genealogy["parents_tree"], "parents"))
    tenth = max(1, len(timings) // 10)
    report = {
        "actions": args.actions, "refused": refused, "batches": len(batches),
        "ms_per_action_first_tenth": round(statistics.mean(timings[:tenth]) * 1000, 2),
        "ms_per_action_last_tenth": round(statistics.mean(timings[-tenth:]) * 1000, 2),
        "largest_genealogy_document_bytes": widest, "deepest_parents_tree": deepest,
    }
    print(json.dumps(report, indent=1))
    kit.close()


def _depth(nodes, key):
    return 1 + max((_depth(n[key], key) for n in nodes), default=0) if nodes else 0


if __name__ == "__main__":
    main()
