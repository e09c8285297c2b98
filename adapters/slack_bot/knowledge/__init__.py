"""Knowledge on Slack: a workspace's knowledge and who may read each private channel's, the channels kept current from
Slack's events, their history read a page at a time, /knowledge and the "Add to knowledge" shortcut."""
