"""dpsim: did dark-pool sweep orders execute well, and would they have done better resting in Centre Point?"""

__version__ = "0.1.0"
