package main

import "io"

func (r *report) printCostCheck(w io.Writer, o options) {}
