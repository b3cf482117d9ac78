from kafkube.cli import main

main()
