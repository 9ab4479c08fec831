"""Generate the example projects' data, deterministically.

The examples must look like data a user would bring (an id column, readable
column names, a few missing values, a text category) yet need no download, so
they are synthesized from a fixed seed.  Run from anywhere:

    python examples/make_data.py

and the CSV files under examples/*/data/ are rewritten byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20250218


def _punch_holes(df: pd.DataFrame, rng: np.random.Generator, columns: dict[str, float]) -> None:
    """Blank out a fraction of the values in some columns, as real exports have."""
    for column, fraction in columns.items():
        mask = rng.random(len(df)) < fraction
        df.loc[mask, column] = np.nan


def house_prices(rng: np.random.Generator, n_train: int = 700, n_test: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sale prices of houses: regression, scored by RMSE on the price."""
    n = n_train + n_test
    neighborhoods = np.array(["Riverside", "Oak Hill", "Downtown", "Maple Park", "Eastgate"])
    premium = {"Riverside": 35_000, "Oak Hill": 60_000, "Downtown": 20_000, "Maple Park": 5_000, "Eastgate": -15_000}
    hood = rng.choice(neighborhoods, size=n, p=[0.25, 0.15, 0.2, 0.25, 0.15])
    living_area = rng.normal(1600, 450, n).clip(550, 4200).round()
    lot_area = (living_area * rng.uniform(2.5, 6.0, n)).round(-1)
    year_built = rng.integers(1925, 2021, n)
    bedrooms = np.clip((living_area / 550 + rng.normal(0, 0.7, n)).round(), 1, 6).astype(int)
    bathrooms = np.clip((bedrooms * 0.6 + rng.normal(0, 0.5, n)) * 2, 2, 8).round() / 2
    garage_cars = rng.choice([0, 1, 2, 3], size=n, p=[0.1, 0.3, 0.5, 0.1])
    condition = rng.choice(["Poor", "Fair", "Good", "Excellent"], size=n, p=[0.08, 0.3, 0.45, 0.17])
    cond_bonus = pd.Series(condition).map({"Poor": -25_000, "Fair": -8_000, "Good": 5_000, "Excellent": 28_000}).to_numpy()
    price = (
        40_000
        + 95 * living_area
        + 1.8 * lot_area
        + 650 * (year_built - 1925)
        + 7_500 * bathrooms
        + 9_000 * garage_cars
        + pd.Series(hood).map(premium).to_numpy()
        + cond_bonus
        + rng.normal(0, 18_000, n)
    ).round(-2)

    df = pd.DataFrame(
        {
            "house_id": np.arange(1001, 1001 + n),
            "neighborhood": hood,
            "living_area_sqft": living_area.astype(int),
            "lot_area_sqft": lot_area,
            "year_built": year_built,
            "bedrooms": bedrooms,
            "bathrooms": bathrooms,
            "garage_cars": garage_cars.astype(float),
            "condition": condition,
            "sale_price": price.astype(int),
        }
    )
    _punch_holes(df, rng, {"lot_area_sqft": 0.08, "garage_cars": 0.05, "condition": 0.04})
    train = df.iloc[:n_train].reset_index(drop=True)
    test = df.iloc[n_train:].drop(columns=["sale_price"]).reset_index(drop=True)
    answers = df.iloc[n_train:][["house_id", "sale_price"]].reset_index(drop=True)
    return train, test, answers


def wine_quality(rng: np.random.Generator, n_train: int = 800, n_test: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lab measurements of wines: binary classification of high quality, scored by ROC AUC."""
    n = n_train + n_test
    color = rng.choice(["red", "white"], size=n, p=[0.35, 0.65])
    red = color == "red"
    fixed_acidity = np.where(red, rng.normal(8.3, 1.5, n), rng.normal(6.9, 0.8, n)).clip(4, 15).round(1)
    volatile_acidity = np.where(red, rng.normal(0.53, 0.17, n), rng.normal(0.28, 0.1, n)).clip(0.08, 1.5).round(3)
    citric_acid = rng.normal(0.32, 0.14, n).clip(0, 1).round(2)
    residual_sugar = np.where(red, rng.gamma(2.0, 1.3, n), rng.gamma(1.4, 4.5, n)).round(1)
    chlorides = np.where(red, rng.normal(0.087, 0.03, n), rng.normal(0.045, 0.015, n)).clip(0.01, 0.3).round(3)
    free_so2 = rng.gamma(3.0, 10.0, n).round()
    total_so2 = (free_so2 + rng.gamma(4.0, 20.0, n)).round()
    ph = rng.normal(3.22, 0.15, n).round(2)
    sulphates = rng.normal(0.55, 0.13, n).clip(0.2, 1.6).round(2)
    alcohol = rng.normal(10.5, 1.2, n).clip(8, 14.5).round(1)
    density = (0.9967 - 0.0009 * (alcohol - 10.5) + 0.00035 * residual_sugar / 5 + rng.normal(0, 0.0005, n)).round(5)
    vineyard = rng.choice(["North Slope", "Valley Floor", "Coastal", "Hillside"], size=n)
    site = pd.Series(vineyard).map({"North Slope": 0.4, "Valley Floor": -0.3, "Coastal": 0.1, "Hillside": 0.0}).to_numpy()

    score = (
        1.1 * (alcohol - 10.5)
        - 4.5 * (volatile_acidity - 0.36)
        + 2.5 * (sulphates - 0.55)
        + 1.2 * (citric_acid - 0.32)
        - 0.01 * (total_so2 - 115)
        + site
        + rng.normal(0, 0.9, n)
    )
    high_quality = (score > 0.35).astype(int)

    df = pd.DataFrame(
        {
            "wine_id": [f"W{i:05d}" for i in range(1, n + 1)],
            "color": color,
            "vineyard": vineyard,
            "fixed_acidity": fixed_acidity,
            "volatile_acidity": volatile_acidity,
            "citric_acid": citric_acid,
            "residual_sugar": residual_sugar,
            "chlorides": chlorides,
            "free_sulfur_dioxide": free_so2,
            "total_sulfur_dioxide": total_so2,
            "density": density,
            "pH": ph,
            "sulphates": sulphates,
            "alcohol": alcohol,
            "high_quality": high_quality,
        }
    )
    _punch_holes(df, rng, {"residual_sugar": 0.06, "pH": 0.05, "vineyard": 0.03})
    train = df.iloc[:n_train].reset_index(drop=True)
    test = df.iloc[n_train:].drop(columns=["high_quality"]).reset_index(drop=True)
    answers = df.iloc[n_train:][["wine_id", "high_quality"]].reset_index(drop=True)
    return train, test, answers


def write(project: str, train: pd.DataFrame, test: pd.DataFrame, answers: pd.DataFrame) -> None:
    """Train/test go into the project; the test answers go outside it (examples/answers/),
    where no solution script can see them but the tests can grade a submission."""
    data_dir = HERE / project / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(data_dir / "train.csv", index=False, lineterminator="\n")
    test.to_csv(data_dir / "test.csv", index=False, lineterminator="\n")
    answers_dir = HERE / "answers"
    answers_dir.mkdir(exist_ok=True)
    answers.to_csv(answers_dir / f"{project}.csv", index=False, lineterminator="\n")


def main() -> None:
    rng = np.random.default_rng(SEED)
    write("house-prices", *house_prices(rng))
    write("wine-quality", *wine_quality(rng))


if __name__ == "__main__":
    main()
