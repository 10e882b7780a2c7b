//! Integration tests of cairn-snapshot against real files and real overlay mounts.
//! One binary (`mod` per topic); overlay tests need root and fail instead of skipping
//! when `CI=true`.

mod apply;
mod crash;
mod drivers;
mod idmapped;
mod layers;
mod model;

mod support;
