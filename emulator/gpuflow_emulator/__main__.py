from gpuflow_emulator.cli import main

main()
