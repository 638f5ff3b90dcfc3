"""The autoscaler: one loop over all endpoints, a pure policy at its core.

Pure (plain data in, plain data out; the simulator calls these too):
  policy     decide(scaling, signals, current, ready, now, state, slo) -> (Decision, state)
  state      the plain data decide reads, answers and carries (Signals, Decision, PolicyState)
  recommend  demand -> stabilized, rate-limited recommendation (panic mode); the idle step
  learned    knobs the spec leaves out, derived per endpoint: queue target from the SLO,
             scale-down window from the cold start, idle period from the idle gaps
  demand     replicas one tick's signals ask for; what a replica serves (learned)
  limits     stabilization windows and rate limits (HPA behavior semantics), history
  schedules  which window is open in its IANA zone (midnight, DST, cron, prewarm)
  cron       a 5-field cron matcher
  report     the status fields and conditions the autoscaler owns
  learned_status  the learned part of the state <-> status.learned (kept across restarts)
Thin shell:
  signals    Prometheus (one query per signal for all endpoints) + activator /demand
  actuation  Kubernetes calls through tideserve.kube
  metrics    the autoscaler's Prometheus metrics
  loop       run(settings, stop): list, read signals, decide, patch, write status
"""
