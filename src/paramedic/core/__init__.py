"""Pure domain logic: alerts, runbooks and their matcher, guardrail decisions, incident state,
templating and plans. Nothing here performs I/O, reads the clock or touches a database."""
