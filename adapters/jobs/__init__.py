"""What every platform needs done, done one way: claiming an event, the answer task, refusals,
the platforms' rate limits, the reply records, and the files people attach (text, images decoded
in isolated workers). The platforms import this package; it imports no platform."""
