from edgepack.cli.app import main

main()
