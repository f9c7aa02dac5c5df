//! Benchmark harness: scenarios, scorers, load runner, results, compare, calibrate. (Being built: issue 5.)
