from xiaoqu.cli import main

main()
