from wsproxy_agent.cli import main

main(prog_name="wsproxy-agent")
