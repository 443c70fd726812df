#!/usr/bin/env python3
"""Generate the reference data of the telematics pipeline (docs: data/README.md).

Writes four CSV files, loaded like dbt seeds by the pipeline:

    car_models.csv  model_id, make, model, fuel_type
    car_colors.csv  color_id, color_name
    vehicles.csv    vehicle_id, model_id, color_id, model_year
    drivers.csv     driver_id, full_name, license_class, home_city

Output rules: header row first, RFC 4180 quoting (csv module, "\\n" line
endings), UTF-8 without BOM, rows sorted by id, unique ids, no empty field,
every vehicles.model_id / color_id present in car_models / car_colors.

Deterministic: the same arguments give byte-identical files. Each file has
its own random stream derived from --seed, so a larger --vehicles does not
change drivers.csv, and the first rows of a larger file equal a smaller one
(as long as the id width is the same).

The shipped files in data/ are generated with the defaults:

    python3 scripts/gen_reference_data.py

Bigger data sets:

    python3 scripts/gen_reference_data.py --vehicles 5000 --drivers 4000 --out /tmp/bigdata

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data"
DEFAULT_VEHICLES = 300
DEFAULT_DRIVERS = 250
DEFAULT_SEED = 42

MIN_YEAR = 2008
MAX_YEAR = 2026

FUEL_TYPES = ("petrol", "diesel", "hybrid", "electric")

# (make, model, fuel_type, first model year, last model year).
# The years only shape vehicles.model_year; they are not written out.
CAR_MODELS: tuple[tuple[str, str, str, int, int], ...] = (
    ("Volkswagen", "Golf", "petrol", 2008, 2026),
    ("Volkswagen", "Passat", "diesel", 2008, 2026),
    ("Volkswagen", "Polo", "petrol", 2008, 2026),
    ("Volkswagen", "Tiguan", "diesel", 2008, 2026),
    ("Volkswagen", "ID.3", "electric", 2020, 2026),
    ("Volkswagen", "ID.4", "electric", 2021, 2026),
    ("Toyota", "Corolla", "hybrid", 2019, 2026),
    ("Toyota", "Yaris", "hybrid", 2012, 2026),
    ("Toyota", "RAV4", "hybrid", 2016, 2026),
    ("Toyota", "Prius", "hybrid", 2008, 2026),
    ("BMW", "3 Series", "diesel", 2008, 2026),
    ("BMW", "5 Series", "diesel", 2008, 2026),
    ("BMW", "X3", "petrol", 2008, 2026),
    ("BMW", "i4", "electric", 2021, 2026),
    ("Mercedes-Benz", "A-Class", "petrol", 2012, 2026),
    ("Mercedes-Benz", "C-Class", "diesel", 2008, 2026),
    ("Mercedes-Benz", "E-Class", "diesel", 2008, 2026),
    ("Mercedes-Benz", "EQA", "electric", 2021, 2026),
    ("Audi", "A3", "petrol", 2008, 2026),
    ("Audi", "A4", "diesel", 2008, 2026),
    ("Audi", "Q5", "diesel", 2008, 2026),
    ("Audi", "e-tron", "electric", 2019, 2026),
    ("Renault", "Clio", "petrol", 2008, 2026),
    ("Renault", "Mégane", "diesel", 2008, 2026),
    ("Renault", "Zoe", "electric", 2013, 2024),
    ("Peugeot", "208", "petrol", 2012, 2026),
    ("Peugeot", "308", "diesel", 2008, 2026),
    ("Peugeot", "3008", "hybrid", 2020, 2026),
    ("Škoda", "Octavia", "diesel", 2008, 2026),
    ("Škoda", "Fabia", "petrol", 2008, 2026),
    ("Škoda", "Enyaq", "electric", 2021, 2026),
    ("Ford", "Focus", "petrol", 2008, 2025),
    ("Ford", "Fiesta", "petrol", 2008, 2023),
    ("Ford", "Kuga", "hybrid", 2020, 2026),
    ("Tesla", "Model 3", "electric", 2017, 2026),
    ("Tesla", "Model Y", "electric", 2020, 2026),
    ("Volvo", "XC60", "diesel", 2008, 2026),
    ("Volvo", "XC40 Recharge", "electric", 2020, 2026),
    ("Volvo", "V60", "hybrid", 2013, 2026),
    ("Hyundai", "i30", "petrol", 2008, 2026),
    ("Hyundai", "Kona Electric", "electric", 2018, 2026),
    ("Hyundai", "Tucson", "hybrid", 2021, 2026),
)

# (color_name, weight): the order fixes the ids C01..C07. Weights follow the
# usual European fleet mix (grey/black/white dominate, green is rare).
CAR_COLORS: tuple[tuple[str, int], ...] = (
    ("black", 22),
    ("white", 20),
    ("silver", 13),
    ("red", 8),
    ("blue", 10),
    ("grey", 24),
    ("green", 3),
)

FIRST_NAMES = (
    "Anna", "Lukas", "Emma", "Noah", "Mia", "Leon", "Sofia", "Elias",
    "Hannah", "Paul", "Lea", "Jonas", "Marie", "Felix", "Laura", "Max",
    "Julia", "David", "Sarah", "Thomas", "Claire", "Pierre", "Camille",
    "Luca", "Giulia", "Marco", "Francesca", "Pablo", "Lucía", "Javier",
    "Carmen", "José", "Zoë", "Chloé", "Renée", "Jürgen", "Jörg", "Søren",
    "Åsa", "Łukasz", "Małgorzata", "Zofia", "Jan", "Eva", "Tomáš", "Petra",
    "Ines", "João", "Maria", "Daan", "Sanne", "Lars", "Ingrid", "Björn",
    "Aoife", "Seán", "Oliver", "Amelia", "Mehmet", "Elif", "Andrei", "Ioana",
)

LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner",
    "Becker", "Hoffmann", "Schäfer", "Koch", "Richter", "Martin", "Bernard",
    "Dubois", "Lefèvre", "Rossi", "Russo", "Ferrari", "Bianchi", "García",
    "Fernández", "López", "Martínez", "Núñez", "Sánchez", "Kowalski",
    "Nowak", "Wiśniewski", "Dvořák", "Novák", "Svoboda", "de Jong",
    "van Dijk", "Jansen", "Jensen", "Nielsen", "Hansen", "Ødegaard",
    "Andersson", "Johansson", "Silva", "Santos", "Ferreira", "O'Brien",
    "Murphy", "Smith", "Jones", "Yılmaz", "Kaya", "Popescu", "Ionescu",
    "Horváth", "Nagy", "Papadopoulos", "Gruber", "Huber", "Peeters",
)

# Fixed names given to the first drivers, so the shipped file always
# exercises non-ASCII text and RFC 4180 quoting (commas, doubled quotes).
SPECIAL_DRIVER_NAMES = (
    "Smith, Jr., John",
    "Zoë Müller",
    "José Núñez",
    'Anne "Annie" O\'Brien',
)

# (license_class, weight)
LICENSE_CLASSES: tuple[tuple[str, int], ...] = (
    ("B", 70),
    ("BE", 12),
    ("C", 7),
    ("C1", 7),
    ("D", 4),
)

# (home_city, weight)
HOME_CITIES: tuple[tuple[str, int], ...] = (
    ("Berlin", 12),
    ("Hamburg", 8),
    ("Munich", 8),
    ("Paris", 12),
    ("Lyon", 5),
    ("Madrid", 9),
    ("Barcelona", 7),
    ("Milan", 7),
    ("Amsterdam", 6),
    ("Brussels", 5),
    ("Vienna", 6),
    ("Zürich", 4),
    ("Kraków", 5),
    ("Lisbon", 4),
    ("Copenhagen", 4),
    ("Prague", 4),
)

HEADERS = {
    "car_models.csv": ("model_id", "make", "model", "fuel_type"),
    "car_colors.csv": ("color_id", "color_name"),
    "vehicles.csv": ("vehicle_id", "model_id", "color_id", "model_year"),
    "drivers.csv": ("driver_id", "full_name", "license_class", "home_city"),
}


def id_width(n: int) -> int:
    """Digits of V/D ids: at least 4 (V0001), wider when n needs it."""
    return max(4, len(str(n)))


def model_id(i: int) -> str:
    return f"M{i:03d}"


def color_id(i: int) -> str:
    return f"C{i:02d}"


def stream(seed: int, name: str) -> random.Random:
    # String seeds are hashed with SHA-512 (seed version 2): stable across
    # runs, platforms and PYTHONHASHSEED.
    return random.Random(f"dag-reference-data:{seed}:{name}")


def car_model_rows() -> list[tuple[str, ...]]:
    return [
        (model_id(i), make, model, fuel)
        for i, (make, model, fuel, _first, _last) in enumerate(CAR_MODELS, start=1)
    ]


def car_color_rows() -> list[tuple[str, ...]]:
    return [(color_id(i), name) for i, (name, _w) in enumerate(CAR_COLORS, start=1)]


def vehicle_rows(n: int, seed: int) -> list[tuple[str, ...]]:
    rng = stream(seed, "vehicles")
    width = id_width(n)
    model_ids = [model_id(i) for i in range(1, len(CAR_MODELS) + 1)]
    color_ids = [color_id(i) for i in range(1, len(CAR_COLORS) + 1)]
    color_weights = [w for _name, w in CAR_COLORS]
    # Per model: the years it was sold, newer years more common on the road.
    years_of = {}
    for mid, (_make, _model, _fuel, first, last) in zip(model_ids, CAR_MODELS):
        years = list(range(max(first, MIN_YEAR), min(last, MAX_YEAR) + 1))
        years_of[mid] = (years, [1 + (y - MIN_YEAR) for y in years])
    rows = []
    for i in range(1, n + 1):
        mid = rng.choice(model_ids)
        cid = rng.choices(color_ids, weights=color_weights)[0]
        years, weights = years_of[mid]
        year = rng.choices(years, weights=weights)[0]
        rows.append((f"V{i:0{width}d}", mid, cid, str(year)))
    return rows


def driver_rows(n: int, seed: int) -> list[tuple[str, ...]]:
    rng = stream(seed, "drivers")
    width = id_width(n)
    classes = [c for c, _w in LICENSE_CLASSES]
    class_weights = [w for _c, w in LICENSE_CLASSES]
    cities = [c for c, _w in HOME_CITIES]
    city_weights = [w for _c, w in HOME_CITIES]
    rows = []
    for i in range(1, n + 1):
        # Draw the name even for the special rows, so every row consumes the
        # same amount of randomness.
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if i <= len(SPECIAL_DRIVER_NAMES):
            name = SPECIAL_DRIVER_NAMES[i - 1]
        license_class = rng.choices(classes, weights=class_weights)[0]
        city = rng.choices(cities, weights=city_weights)[0]
        rows.append((f"D{i:0{width}d}", name, license_class, city))
    return rows


def check(name: str, rows: list[tuple[str, ...]]) -> None:
    """Guards the output rules before anything is written."""
    header = HEADERS[name]
    ids = [r[0] for r in rows]
    if ids != sorted(ids):
        raise AssertionError(f"{name}: rows not sorted by id")
    if len(set(ids)) != len(ids):
        raise AssertionError(f"{name}: duplicate id")
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise AssertionError(f"{name}:{line}: {len(row)} fields, expected {len(header)}")
        if any(not f.strip() for f in row):
            raise AssertionError(f"{name}:{line}: empty field")


def write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    # Write to a temporary file in the same directory, then rename: a reader
    # never sees a half-written file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            w.writerow(header)
            w.writerows(rows)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def non_negative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Generate the telematics reference CSV files "
        "(car_models, car_colors, vehicles, drivers).",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"output directory (default: {DEFAULT_OUT})")
    p.add_argument("--vehicles", type=non_negative, default=DEFAULT_VEHICLES,
                   help=f"number of vehicles (default: {DEFAULT_VEHICLES})")
    p.add_argument("--drivers", type=non_negative, default=DEFAULT_DRIVERS,
                   help=f"number of drivers (default: {DEFAULT_DRIVERS})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"random seed (default: {DEFAULT_SEED})")
    args = p.parse_args(argv)

    files = {
        "car_models.csv": car_model_rows(),
        "car_colors.csv": car_color_rows(),
        "vehicles.csv": vehicle_rows(args.vehicles, args.seed),
        "drivers.csv": driver_rows(args.drivers, args.seed),
    }
    for name, rows in files.items():
        check(name, rows)
    models = {r[0] for r in files["car_models.csv"]}
    colors = {r[0] for r in files["car_colors.csv"]}
    for line, (vid, mid, cid, _year) in enumerate(files["vehicles.csv"], start=2):
        if mid not in models or cid not in colors:
            raise AssertionError(f"vehicles.csv:{line}: {vid} has unknown model or color")

    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        write_csv(args.out / name, HEADERS[name], rows)
        print(f"{args.out / name}: {len(rows)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
