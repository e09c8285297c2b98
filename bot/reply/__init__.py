"""The live reply on any platform: the surface an adapter gives (post, edit, limits), the renderer that shows the
model's text as it streams, where a long reply is cut, and how a thought is shown."""
