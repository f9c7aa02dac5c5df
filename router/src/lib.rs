//! Routing: config, policy, classifier, PII detector, pricing, ledger and the gateway server. (Being built: issue 4.)
