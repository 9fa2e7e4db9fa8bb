"""What an agent is: the Mesa agent, policies (contagion, LLM), prompts and engines."""
