"""The loader survives every known defect of the shipped catalog (include/catalog/README.md)."""

from __future__ import annotations

import fsspec
import pytest

from gpuflow.core.catalog import COLUMNS, SUSPECT_PRICE_TIER, CapacityType, Catalog, load_catalog, parse_catalog
from gpuflow.core.errors import CatalogError

HEADER = ",".join(COLUMNS)


def one_row(row: str) -> Catalog:
    return parse_catalog(f"{HEADER}\n{row}\n")


def test_shipped_catalog_loads_every_row_and_accounts_for_each_one(catalog: Catalog) -> None:
    rejected = sum(n for reason, n in catalog.report().items() if reason.startswith("rejected"))
    assert catalog.info.rows == 4792
    assert catalog.info.offers + rejected == catalog.info.rows
    assert len(catalog.info.sha256) == 16


def test_fractional_gpu_slices_are_rejected(catalog: Catalog) -> None:
    assert all(o.instance_type.split(".")[0] not in {"g6f", "gr6f"} for o in catalog.offers)
    assert any("fractional" in reason for reason in catalog.report())


def test_placeholder_price_700_is_unknown_and_never_offered(catalog: Catalog) -> None:
    prices = {p for o in catalog.offers for p in (o.on_demand_usd, o.spot_usd)}
    assert 700.0 not in prices
    spot_only = one_row("gcp,tpu-v6e-1,tpu-v6e-1,1,,,,2.7,700,southamerica-west1,southamerica-west1-a")
    (offer,) = spot_only.offers
    assert offer.on_demand_usd == 2.7
    assert offer.spot_usd is None


def test_spot_above_on_demand_is_treated_as_unknown() -> None:
    (offer,) = one_row("aws,g5.xlarge,A10G,1,22.35,4,16,1.0,1.5,us-east-1,use1-az1").offers
    assert offer.price(CapacityType.SPOT) is None
    assert offer.price(CapacityType.ON_DEMAND) == 1.0


def test_missing_prices_make_an_offer_unbuyable_for_that_capacity_only() -> None:
    (spot_only,) = one_row("aws,trn1.2xlarge,Trainium,1,32,8,32,,0.4,us-east-1,use1-az1").offers
    assert spot_only.on_demand_usd is None
    assert spot_only.spot_usd == 0.4
    assert one_row("aws,trn1.2xlarge,Trainium,1,32,8,32,,,us-east-1,use1-az1").offers == ()


def test_trainium2_memory_contradicting_the_model_is_repaired(catalog: Catalog) -> None:
    trn2 = [o for o in catalog.offers if o.accelerator == "Trainium2"]
    assert trn2
    assert {o.memory_gib for o in trn2} == {96}


def test_gib_memory_figures_become_the_nominal_figure(catalog: Catalog) -> None:
    assert {o.memory_gib for o in catalog.offers if o.accelerator == "L4"} == {24}


def test_gcp_h100_low_price_tier_is_kept_but_flagged(catalog: Catalog) -> None:
    a3 = [o for o in catalog.offers if o.instance_type == "a3-highgpu-8g" and o.on_demand_usd]
    flagged = [o for o in a3 if SUSPECT_PRICE_TIER in o.flags]
    assert flagged
    assert all(o.on_demand_usd is not None and o.on_demand_usd < 50 for o in flagged)
    assert all(o.on_demand_usd is not None and o.on_demand_usd > 80 for o in a3 if o not in flagged)


def test_same_host_with_different_gpus_are_distinct_offers(catalog: Catalog) -> None:
    n1 = {o.accelerator for o in catalog.offers if o.instance_type == "n1-highmem-8" and o.zone == "us-central1-c"}
    assert {"P4", "T4", "V100"} <= n1


def test_duplicate_rows_are_rejected() -> None:
    row = "aws,g5.xlarge,A10G,1,22.35,4,16,1.0,0.5,us-east-1,use1-az1"
    cat = parse_catalog(f"{HEADER}\n{row}\n{row}\n")
    assert len(cat.offers) == 1
    assert cat.report() == {"rejected: duplicate of an earlier row": 1}


def test_a_file_without_the_catalog_header_is_refused() -> None:
    with pytest.raises(CatalogError, match="must start with the header"):
        parse_catalog("cloud,price\naws,1\n")


def test_catalog_loads_from_an_fsspec_uri_and_names_its_source() -> None:
    row = "gcp,g2-standard-4,L4,1,24,4,16,0.7,0.3,us-central1,us-central1-a"
    with fsspec.open("memory://catalogs/test.csv", "w") as handle:
        handle.write(f"{HEADER}\n{row}\n")
    cat = load_catalog("memory://catalogs/test.csv")
    assert cat.info.source == "memory://catalogs/test.csv"
    assert cat.offers[0].instance_type == "g2-standard-4"


def test_unreadable_catalog_says_how_to_fix_it(tmp_path: object) -> None:
    with pytest.raises(CatalogError, match="GPUFLOW_CATALOG"):
        load_catalog("/nonexistent/catalog.csv")
