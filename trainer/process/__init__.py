"""The trainer as a process: its title in ps/htop/nvitop, and its quick exit. Pure: the app imports it."""
