"""Clicks on the buttons under Slack answers: the votes (👍 / 👎, and the note a 👎 asks for) and a tool's Run /
Cancel."""
