"""Reads the owning service computes when asked, instead of the read side's stored documents: a material batch's
genealogy is a walk over the edges the batch actions wrote (materials.md §3.12), built in the materials service on
each request (services.materials.genealogy), so nothing is rebuilt on write and the answer is always current.

The gateway keeps its HTTP concerns: the verbs, the LIST query (`filter[target_batch]`, any of), the caller's
bureau (a batch the caller cannot see is a 404, or no row in a list) and the rendering."""
from gateway import listing
from gateway.http import json_response
from gateway.rendering import render
from shared.errors import NotFound
from shared.uris import parse_uri, resource_path

GENEALOGY_TIMEOUT = 60  # seconds: the walk of a long ancestry is one request, but not a quick one


def material_genealogy(gateway, request, spec, verb, uuid, caller):
    base = gateway._base(request)
    ctx = {"user": caller.user, "bureau": caller.bureau, "platform_admin": caller.platform_admin}

    def document(batch_uuid):
        doc = gateway.services.call("materials", "genealogy", batch_uuid, ctx, timeout=GENEALOGY_TIMEOUT)
        return render(spec, resource_path(spec.name, batch_uuid), doc, base)

    if verb == "GET":  # /material-genealogy/<the batch's uuid>/
        return json_response(document(uuid))
    query = listing.parse(spec, request.query_string.decode())
    targets = []
    for each in query.filters:
        if each.field == "target_batch" and each.op == "in":
            targets += [v for v in each.values if v not in targets]
    resources = []
    for target in targets:  # no target: no genealogy to build, an empty list (as a filter that matches nothing)
        try:
            kind, batch_uuid = parse_uri(target)
        except ValueError:
            continue
        if kind != "material-batch":
            continue
        try:
            resources.append(document(batch_uuid))
        except NotFound:  # another bureau's batch, or none: not listed
            continue
    return json_response({"resources": resources, "total_count": len(resources),
                          "meta": {"total_count_is_estimate": False, "next": None}})


READS = {"material-genealogy": material_genealogy}
