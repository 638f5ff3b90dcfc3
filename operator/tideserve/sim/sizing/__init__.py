"""The right-sizing bench: a fleet whose truth is independent of the catalog, baselines,
and a judge with load-dependent latency (`hack/bench-rightsizing`).

  truth      what a model really does per option; the judge
  fleet      the synthetic fleet and what each endpoint exports
  baselines  VPA, KRR, catalog rule, naive, oracle, and the shipped advisor
  run        one seed's runs (single shot and rolling)
  report     tables over seeds; main is the command
"""
