"""/my/: the data subject's self-service pages, server-rendered, without JavaScript."""
