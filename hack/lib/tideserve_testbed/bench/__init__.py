"""The benchmarks behind hack/bench-activator, hack/bench-autoscaler and hack/bench-reconcile
(thin entry points): linted and type-checked like the operator, sharing one set of helpers
(common) and the test bed's handles (fixtures, harness). hack/bench-rightsizing is not
here yet."""
