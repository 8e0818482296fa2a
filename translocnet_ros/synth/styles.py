"""Town styles: the knobs that make a suburb look and scan differently from a downtown or an industrial park.

Roof colours are base RGB values; every town jitters them, so no two towns share a palette (the ground's and
everything else's colours are drawn per image, synth/appearance.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TownStyle:
    name: str
    block_m: tuple[float, float]  # road spacing range
    road_width_m: tuple[float, float]
    sidewalk_m: float
    node_jitter: float  # fraction of block size: 0 = perfect grid, 0.35 = irregular
    drop_edge_prob: float
    building_fill: float  # building attempts per 100 m² of buildable land
    building_size_m: tuple[float, float]
    building_height_m: tuple[float, float]
    pitched_prob: float
    setback_m: tuple[float, float]
    street_tree_spacing_m: float  # 0: none
    park_trees_per_ha: float
    parked_car_prob: float  # per 6 m of curb
    fence_prob: float
    ground: str  # base ground material: grass / pavement / dirt
    roof_colors: tuple[tuple[int, int, int], ...]
    # layout variety (probabilities per road / per building attempt; densities per hectare)
    curve_prob: float = 0.2  # a road is bent (bow or S) instead of straight
    slab_prob: float = 0.0  # a building attempt is a long apartment slab
    courtyard_prob: float = 0.0  # a building attempt is a perimeter block around a courtyard
    parking_lot_prob: float = 0.1  # a road side gets a parking lot full of cars
    driveway_prob: float = 0.5  # a house gets a paved driveway to the street (sometimes with a car)
    hedge_prob: float = 0.3  # a lot is lined with hedges
    bushes_per_ha: float = 20.0
    path_count_per_km2: float = 10.0  # footpaths through green areas


STYLES = {
    "suburban": TownStyle(
        name="suburban",
        block_m=(70, 110),
        road_width_m=(7, 9),
        sidewalk_m=2.0,
        node_jitter=0.2,
        drop_edge_prob=0.1,
        building_fill=0.25,
        building_size_m=(9, 18),
        building_height_m=(4, 10),
        pitched_prob=0.7,
        setback_m=(4, 8),
        street_tree_spacing_m=14,
        park_trees_per_ha=20,
        parked_car_prob=0.4,
        fence_prob=0.5,
        ground="grass",
        roof_colors=((150, 70, 55), (90, 90, 95), (120, 105, 95), (60, 60, 70)),
        curve_prob=0.3,
        slab_prob=0.08,
        courtyard_prob=0.0,
        parking_lot_prob=0.12,
        driveway_prob=0.7,
        hedge_prob=0.45,
        bushes_per_ha=35.0,
        path_count_per_km2=15.0,
    ),
    "downtown": TownStyle(
        name="downtown",
        block_m=(60, 90),
        road_width_m=(11, 16),
        sidewalk_m=4.0,
        node_jitter=0.05,
        drop_edge_prob=0.03,
        building_fill=0.6,
        building_size_m=(18, 40),
        building_height_m=(10, 40),
        pitched_prob=0.15,
        setback_m=(0.5, 2),
        street_tree_spacing_m=18,
        park_trees_per_ha=4,
        parked_car_prob=0.6,
        fence_prob=0.05,
        ground="pavement",
        roof_colors=((110, 110, 110), (150, 145, 140), (80, 85, 90), (170, 165, 150)),
        curve_prob=0.1,
        slab_prob=0.2,
        courtyard_prob=0.8,
        parking_lot_prob=0.15,
        driveway_prob=0.0,
        hedge_prob=0.15,
        bushes_per_ha=12.0,
        path_count_per_km2=4.0,
    ),
    "industrial": TownStyle(
        name="industrial",
        block_m=(120, 180),
        road_width_m=(10, 14),
        sidewalk_m=1.5,
        node_jitter=0.1,
        drop_edge_prob=0.15,
        building_fill=0.18,
        building_size_m=(30, 70),
        building_height_m=(6, 16),
        pitched_prob=0.1,
        setback_m=(8, 20),
        street_tree_spacing_m=0,
        park_trees_per_ha=3,
        parked_car_prob=0.35,
        fence_prob=0.6,
        ground="dirt",
        roof_colors=((170, 170, 175), (120, 130, 140), (200, 200, 200), (90, 100, 95)),
        curve_prob=0.15,
        slab_prob=0.05,
        courtyard_prob=0.0,
        parking_lot_prob=0.3,
        driveway_prob=0.0,
        hedge_prob=0.1,
        bushes_per_ha=10.0,
        path_count_per_km2=3.0,
    ),
    "rural": TownStyle(
        name="rural",
        block_m=(150, 260),
        road_width_m=(5.5, 7),
        sidewalk_m=0.0,
        node_jitter=0.35,
        drop_edge_prob=0.3,
        building_fill=0.04,
        building_size_m=(8, 20),
        building_height_m=(3, 9),
        pitched_prob=0.8,
        setback_m=(6, 15),
        street_tree_spacing_m=0,
        park_trees_per_ha=40,
        parked_car_prob=0.12,
        fence_prob=0.3,
        ground="grass",
        roof_colors=((140, 60, 45), (100, 95, 90), (70, 75, 65), (160, 120, 80)),
        curve_prob=0.5,
        slab_prob=0.0,
        courtyard_prob=0.0,
        parking_lot_prob=0.03,
        driveway_prob=0.6,
        hedge_prob=0.35,
        bushes_per_ha=25.0,
        path_count_per_km2=8.0,
    ),
}

# Material ids, shared by the ground raster, the mesh faces and the LiDAR reflectance model.
GRASS, ASPHALT, MARKING, SIDEWALK, DIRT, PAVEMENT = 0, 1, 2, 3, 4, 5
WALL, ROOF, CANOPY, TRUNK, CAR, POLE, FENCE = 6, 7, 8, 9, 10, 11, 12
GRAVEL, HEDGE = 13, 14
GROUND_MATERIAL = {"grass": GRASS, "pavement": PAVEMENT, "dirt": DIRT}
REFLECTANCE = {
    GRASS: 0.32,
    ASPHALT: 0.07,
    MARKING: 0.65,
    SIDEWALK: 0.24,
    DIRT: 0.2,
    PAVEMENT: 0.2,
    WALL: 0.3,
    ROOF: 0.25,
    CANOPY: 0.28,
    TRUNK: 0.18,
    CAR: 0.12,
    POLE: 0.5,
    FENCE: 0.3,
    GRAVEL: 0.22,
    HEDGE: 0.3,
}
