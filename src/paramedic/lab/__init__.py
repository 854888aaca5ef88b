"""The lab: sample service, fault injection, supervisord wiring and the scenarios behind the demo."""
