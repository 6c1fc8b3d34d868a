"""What the book's chapters use beside the science: their claims ledger (`pcbp.book.ledger`)."""
