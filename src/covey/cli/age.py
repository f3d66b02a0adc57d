"""`covey age`: request, check and prove an age credential from this device."""
