"""era-s7: an MNIST CNN under 8,000 parameters, developed in three steps (see README)."""
import os

# OpenMP's threads spin while they wait (its "active" default): two notebooks open at once, each with one thread per
# core, then take the cores from each other's work. Passive waiting (threads sleep) made a 2-thread run beside a
# 1-thread one 1.5x faster on 2 cores (the 1-thread one 1.3x), and the 2-thread run alone no slower
# (results/checks/omp-wait-policy.json, scripts/omp_wait_check.py). It takes effect only if torch is imported after
# era_s7 (OpenMP reads it once, when torch loads it); an OMP_WAIT_POLICY you set yourself is kept, and
# ERA_S7_OMP_WAIT_POLICY=keep leaves it unset.
if os.environ.get("ERA_S7_OMP_WAIT_POLICY") != "keep":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
