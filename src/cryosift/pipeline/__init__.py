"""One command from micrographs to clean particles: tasks, executors and the driver."""
