"""Line-item estimates from the model's analysis (orders.md §3, files.md §1.1): material use and material cost.

Stored for the whole line item (all of its quantity), in the shape the map proposes. Only what Stratum can know
from its own data is filled: material volume from the analysed model, cost from the material's price per unit.
Print time and post-processing cost need a slicer and bureau rates, which are not part of this service yet; they
stay absent rather than invented.
"""

# Material price units that measure volume, as cm³ per unit; weight units go through the material's density (g/cm³).
_CM3_PER_UNIT = {"cm3": 1.0, "ml": 1.0, "mm3": 0.001, "l": 1000.0, "inch3": 16.387064}
_GRAMS_PER_UNIT = {"gram": 1.0, "kg": 1000.0, "lb": 453.59237}


def material_units_used(volume_cm3, material):
    """How many of the material's price units `volume_cm3` of it is; None when its unit is not a volume or a
    weight with a known density (e.g. 'each', 'meter')."""
    units = material.get("units") or "cm3"
    if units in _CM3_PER_UNIT:
        return volume_cm3 / _CM3_PER_UNIT[units]
    if units in _GRAMS_PER_UNIT and material.get("density"):
        return volume_cm3 * float(material["density"]) / _GRAMS_PER_UNIT[units]
    return None


def estimate(model, quantity, base_material=None, support_material=None, currency=None):
    """Estimates for `quantity` prints of an analysed `model` (its fields: volume_mm, …) in `base_material`."""
    volume_cm3 = model["volume_mm"] / 1000.0 * quantity
    materials = {"base": round(volume_cm3, 6), "support": None}
    cost = {"material": None, "total": None}
    if base_material is not None and base_material.get("cost") is not None:
        used = material_units_used(volume_cm3, base_material)
        if used is not None:
            cost["material"] = round(used * float(base_material["cost"]), 4)
            cost["total"] = cost["material"]
    return {"estimator": "stratum", "currency": currency, "materials": materials, "cost": cost,
            "model_volume_mm": model["volume_mm"], "quantity": quantity,
            "base_material": (base_material or {}).get("uri")}


def out_of_date(line_item):
    """Whether a line item printing a model lacks estimates for its current quantity and base material (the
    estimate job's message may have been lost; the sweeper asks again)."""
    if not line_item.get("model") or line_item.get("error"):
        return False
    estimates = line_item.get("estimates")
    base = (line_item.get("materials") or {}).get("base")
    return not estimates or estimates.get("quantity") != line_item.get("quantity") \
        or estimates.get("base_material") != base or estimates.get("model") != line_item["model"]
