from .structural_distill import (SamStructuralDistiller, sample_query_cells,
                                 self_similarity_rows)

__all__ = [
    'SamStructuralDistiller', 'self_similarity_rows', 'sample_query_cells'
]
