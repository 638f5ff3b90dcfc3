"""Trace-replay simulator: the operator's own policy against HPA, KEDA, Knative and an oracle.

Layers, bottom up:
  models, traffic, traces   what is served and what arrives (traces: public files by format)
  dataplane                 requests through replicas with dynamic batching (fast, exact)
  pipeline, endpoint        Triton metrics -> Prometheus -> controller, replica lifecycle (simpy)
  hpa, kpa, baselines       peer autoscalers, written from their published algorithms
  tideserve_policy          adapter that calls tideserve.autoscaler.policy.decide itself
  oracle                    clairvoyant lower bound (Erlang C seed, DP over intervals)
  runner, frontier          runs; cost at equal attainment (Pareto frontiers)
  report, plots             tables and verdicts over seeds, figures; bench.main is
                            `tideserve bench`
"""
