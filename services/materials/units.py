"""Material units (materials.md §2.1): the 13 units, their measurement core, and conversion.

Quantities move between batches, lots and containers whose units may differ (a lot of powder received in kg,
topped off into a batch kept in gram). Every conversion goes through the core unit of the quantity's kind:
gram for weight, cm3 for volume (the map's inferred cores), each, meter and meter2. Weight and volume convert
into each other only through the material's density (g/cm3); without one, the move is refused.
"""
from shared.errors import InvalidPayload

CORE_OF_KIND = {"weight": "gram", "volume": "cm3", "count": "each", "length": "meter", "area": "meter2"}

# unit → (kind, how many core units one unit is)
UNITS = {
    "gram": ("weight", 1.0), "kg": ("weight", 1000.0), "lb": ("weight", 453.59237),
    "cm3": ("volume", 1.0), "mm3": ("volume", 0.001), "inch3": ("volume", 16.387064), "ml": ("volume", 1.0),
    "l": ("volume", 1000.0),
    "each": ("count", 1.0),
    "meter": ("length", 1.0), "feet": ("length", 0.3048),
    "meter2": ("area", 1.0), "feet2": ("area", 0.09290304),
}

# Quantities are kept to a micro-unit: enough for any scale a bureau weighs with, and free of float dust.
PLACES = 6
EPSILON = 10 ** -PLACES


def kind_of(unit):
    if unit not in UNITS:
        raise InvalidPayload(f"'{unit}' is not a material unit (one of {', '.join(UNITS)}).", field="units")
    return UNITS[unit][0]


def core_unit(unit):
    return CORE_OF_KIND[kind_of(unit)]


def rounded(quantity):
    value = round(float(quantity), PLACES)
    return 0.0 if value == 0 else value  # no -0.0


def convert(quantity, from_unit, to_unit, density=None, what="quantity"):
    """`quantity` in `from_unit` expressed in `to_unit` (unrounded)."""
    if from_unit == to_unit:
        return float(quantity)
    from_kind, from_factor = UNITS[from_unit]
    to_kind, to_factor = UNITS[to_unit]
    core = float(quantity) * from_factor
    if from_kind != to_kind:
        pair = {from_kind, to_kind}
        if pair != {"weight", "volume"} or not density:
            raise InvalidPayload(f"Cannot convert the {what} from {from_unit} to {to_unit}: "
                                 + ("the material has no density." if pair == {"weight", "volume"}
                                    else f"{from_kind} and {to_kind} are different kinds of quantity."),
                                 field="quantity")
        core = core / float(density) if from_kind == "weight" else core * float(density)  # g ↔ cm3
    return core / to_factor


def to_core(quantity, unit, density=None):
    return convert(quantity, unit, core_unit(unit), density)
