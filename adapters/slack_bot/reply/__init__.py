"""A reply on Slack: a message edited with chat.update or Slack's native stream, tool calls as task cards, the model's
Markdown as Slack shows it, and the replies a stopped process left unfinished."""
