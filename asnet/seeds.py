"""Seeds as replicates (`seeds:` in the config): which training runs of a (dataset, split,
variant) exist, and what each one trains.

The run of the config's `seed` is the run of today's paths (results/checkpoints/<dataset>/
split<k>/<variant>); every other seed s of `seeds` is a run of its own, trained with seed s
and everything else the variant's config, in <variant>/seed<s>/ (asnet.paths.run_name). A
run's configuration holds its one seed: `seeds`, which says which runs exist, is left out
(None), as `splits` says which splits exist and no run trains on two.
"""

from __future__ import annotations

import dataclasses

from asnet.config import Config, ConfigError


def run_seeds(cfg: Config) -> tuple[int, ...]:
    """Every configured seed, the config's `seed` first, then the others of `seeds` as listed."""
    return (cfg.seed, *(s for s in cfg.seeds or () if s != cfg.seed))


def path_seed(cfg: Config, seed: int | None) -> int | None:
    """The seed as the paths write it: None for the config's `seed` (or None), else `seed`;
    ConfigError naming the configured seeds when `seed` is not one of them."""
    if seed is None or seed == cfg.seed:
        return None
    seeds = run_seeds(cfg)
    if seed not in seeds:
        listed = ", ".join(map(str, seeds))
        raise ConfigError(f"seed {seed} is not configured (seeds: {listed}); pass --seed "
                          f"{listed.replace(', ', ' or ')}, or add it to `seeds` in your config "
                          f"(--set 'seeds=[{', '.join(map(str, (*seeds, seed)))}]')")
    return seed


def seed_config(cfg: Config, seed: int | None) -> Config:
    """The configuration of the run of `seed` (None: the config's `seed`): `seed` set, `seeds`
    left out. For the config's own seed only `seeds` changes, which no digest holds."""
    path_seed(cfg, seed)
    return dataclasses.replace(cfg, seed=cfg.seed if seed is None else seed, seeds=None)


def seed_runs(cfg: Config) -> list[tuple[int, int | None]]:
    """(seed, path seed) of every configured run: [(seed, None), (s, s), ...]."""
    return [(s, path_seed(cfg, s)) for s in run_seeds(cfg)]

