namespace blockkv {}
